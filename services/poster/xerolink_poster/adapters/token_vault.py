"""OAuth tokens encrypted at rest with AES-256-GCM (the `cryptography` package).

Each connection's access and refresh token are sealed together; the row keeps the id of the key
that sealed them beside the ciphertext, so keys can rotate: the first key configured seals, every
key configured opens, and start-up re-seals rows still under an older key. The connection id is
the associated data, so a ciphertext copied onto another row does not open.

Keys come from configuration, never from the database:
  XEROLINK_TOKEN_ENCRYPTION_KEY       one key or several, comma-separated, the first sealing:
                                      "base64key" or "id:base64key" (32 bytes, standard or URL-safe
                                      base64; a bare key's id is derived from its hash)
  XEROLINK_TOKEN_ENCRYPTION_KEY_FILE  a file with the same entries, one per line or comma-separated
                                      (a mounted Kubernetes Secret)
With neither set (a developer machine), a key is generated once into
~/.config/xerolink/token-keys (mode 0600) and a warning is logged."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

NONCE_BYTES = 12
KEY_BYTES = 32
MAX_KEY_ID = 32


class TokenKeyError(Exception):
    """The key configuration is unusable, or a ciphertext does not open with the keys configured."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str


@dataclass(frozen=True)
class Sealed:
    key_id: str
    box: bytes  # nonce || ciphertext+tag


class TokenVault:
    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise TokenKeyError(f"the active key {active!r} is not among the keys")
        for key_id, key in keys.items():
            if not key_id or len(key_id) > MAX_KEY_ID or ":" in key_id or "," in key_id:
                raise TokenKeyError(f"key id {key_id!r}: 1-{MAX_KEY_ID} characters without ':' or ','")
            if len(key) != KEY_BYTES:
                raise TokenKeyError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active = active

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def seal(self, tokens: Tokens, connection_id: str) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = json.dumps({"a": tokens.access_token, "r": tokens.refresh_token}).encode()
        box = nonce + self._ciphers[self.active].encrypt(nonce, plain, connection_id.encode())
        return Sealed(self.active, box)

    def open(self, sealed: Sealed, connection_id: str) -> Tokens:
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise TokenKeyError(
                f"connection {connection_id!r} was sealed with key {sealed.key_id!r}, which is not configured: "
                "add it back to XEROLINK_TOKEN_ENCRYPTION_KEY (after the active key) or reconnect the organisation"
            )
        try:
            plain = cipher.decrypt(sealed.box[:NONCE_BYTES], sealed.box[NONCE_BYTES:], connection_id.encode())
        except InvalidTag as exc:
            raise TokenKeyError(
                f"the tokens of connection {connection_id!r} do not open with key {sealed.key_id!r}"
            ) from exc
        data = json.loads(plain)
        return Tokens(str(data["a"]), str(data["r"]))

    # -- configuration ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, source: str) -> TokenVault:
        entries = [e.strip() for e in text.replace("\n", ",").split(",") if e.strip() and not e.strip().startswith("#")]
        if not entries:
            raise TokenKeyError(f"{source} holds no key; expected id:base64key entries")
        keys: dict[str, bytes] = {}
        active = ""
        for entry in entries:
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                key_id, encoded = "", entry
            try:
                key = base64.b64decode(encoded.strip().replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise TokenKeyError(f"{source}: key {key_id.strip() or '(unnamed)'!r} is not base64") from exc
            key_id = key_id.strip() or "k" + hashlib.sha256(key).hexdigest()[:12]
            keys[key_id] = key
            active = active or key_id
        return cls(keys, active)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> TokenVault:
        env = os.environ if env is None else env
        inline = env.get("XEROLINK_TOKEN_ENCRYPTION_KEY", "")
        if inline.strip():
            return cls.parse(inline, "XEROLINK_TOKEN_ENCRYPTION_KEY")
        path = env.get("XEROLINK_TOKEN_ENCRYPTION_KEY_FILE", "")
        if path:
            try:
                return cls.parse(Path(path).read_text(), path)
            except OSError as exc:
                raise TokenKeyError(f"XEROLINK_TOKEN_ENCRYPTION_KEY_FILE={path}: {exc.strerror}") from exc
        return cls.parse(_development_keys(env), "the development key file")


def new_key_entry(key_id: str) -> str:
    """A fresh `id:base64key` entry (what `xerolink token-key` style tooling would print)."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def _development_keys(env: Mapping[str, str]) -> str:
    home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    path = Path(home) / "xerolink" / "token-keys"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process may have created it a moment ago and still be writing.
        for _ in range(50):
            text = path.read_text()
            if text.strip():
                return text
            time.sleep(0.02)
        return path.read_text()
    except OSError as exc:
        raise TokenKeyError(
            f"no token key configured and {path} cannot be created ({exc.strerror}): set XEROLINK_TOKEN_ENCRYPTION_KEY"
        ) from exc
    with os.fdopen(fd, "w") as out:
        out.write(new_key_entry("dev") + "\n")
    log.warning("no token key configured: generated a development key in %s (set XEROLINK_TOKEN_ENCRYPTION_KEY)", path)
    return path.read_text()


_installed: dict[str, TokenVault] = {}


def install(vault: TokenVault) -> None:
    """Makes `vault` the process's vault: what installed() returns from then on."""
    _installed["vault"] = vault


def installed() -> TokenVault:
    if "vault" not in _installed:
        _installed["vault"] = TokenVault.from_environment()
    return _installed["vault"]
