"""Where a server may listen. Loopback is the default; any other interface is reachable from other
hosts, so it needs caller authentication (XEROLINK_CALLERS_FILE) or an explicit, logged opt-out
(XEROLINK_ALLOW_UNAUTHENTICATED=1): without authentication every caller may use every connection,
post to any Xero organisation and unlink its records."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

ALLOW_UNAUTHENTICATED = "XEROLINK_ALLOW_UNAUTHENTICATED"
LOOPBACK_HOST = "127.0.0.1"
_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"", "0", "false", "no", "off"})


def on_loopback(port: int) -> str:
    return f"{LOOPBACK_HOST}:{port}"


def bound(address: str, port: int) -> str:
    """The address as bound: its host with the port actually taken (an address may end in :0)."""
    if address.startswith(("unix:", "unix-abstract:")):
        return address
    host, separator, _ = address.rpartition(":")
    return f"{host}:{port}" if separator else address


def is_loopback(address: str) -> bool:
    """True when only this host can connect: a loopback IP, `localhost`, or a Unix socket. Any
    other host name counts as reachable from other hosts (it may resolve to any interface), and so
    does a wildcard (`0.0.0.0`, `[::]`, an empty host)."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host, separator, _ = address.rpartition(":")
    if not separator:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed(env: Mapping[str, str]) -> bool:
    value = env.get(ALLOW_UNAUTHENTICATED, "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    # A typo must not open the server, nor silently keep it closed while the operator thinks otherwise.
    raise SystemExit(f"{ALLOW_UNAUTHENTICATED}={env[ALLOW_UNAUTHENTICATED]!r}: set it to 1 or leave it unset")


def check_exposure(service: str, address: str, authenticated: bool, env: Mapping[str, str] | None = None) -> None:
    """Refuses (SystemExit) to serve unauthenticated on an interface other hosts can reach, unless
    the operator said so explicitly; then it logs a warning. Call it before opening anything."""
    env = os.environ if env is None else env
    if authenticated or is_loopback(address):
        return
    if not _allowed(env):
        raise SystemExit(
            f"{service}: refusing to listen on {address} without caller authentication: other hosts could "
            f"call it as anyone. Set XEROLINK_CALLERS_FILE (docs/operations.md), listen on loopback "
            f"({LOOPBACK_HOST}), or set {ALLOW_UNAUTHENTICATED}=1 to run without authentication anyway"
        )
    log.warning(
        "%s: caller authentication is OFF and the server listens on %s, reachable from other hosts "
        "(%s=1): anyone who can connect may use every connection",
        service,
        address,
        ALLOW_UNAUTHENTICATED,
    )
