"""Keeping a connection's access token fresh, with exactly one worker exchanging the rotating
refresh token.

One refresh at a time: a worker that finds the access token expiring (or gets a 401) claims the
refresh with a compare-and-swap on the connection row (token_version unchanged and no live
claim); the others wait until the version moves and reuse the winner's token. The winner stores
the rotated pair as the next version in the same statement that releases the claim. A refresh
whose answer is lost keeps the previous refresh token, which Xero honours for a grace period
(about 30 minutes), so the next attempt recovers the chain instead of killing it."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from xerolink_common.errors import (
    PreconditionViolation,
    XerolinkError,
    failed_precondition,
    not_found,
    unavailable,
)
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, Database, DuplicateKey, now_us
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.token_vault import Sealed, TokenKeyError, Tokens, TokenVault
from xerolink_poster.adapters.xero_client import Credentials, Uncertain
from xerolink_poster.adapters.xero_identity import (
    AppNotConfigured,
    TokenGrant,
    TokenRefused,
    XeroApps,
    XeroIdentity,
)
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer.connections import (
    require_connection_id,
    require_tenant_free,
)
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)

US = 1_000_000


@dataclass(frozen=True)
class RefreshOutcome:
    row: ConnectionRow
    exchanged: bool


@dataclass
class _CachedToken:
    version: int
    access_token: str
    refresh_at_us: int


@dataclass
class ConnectionTokens:
    db: Database
    vault: TokenVault
    apps: XeroApps
    identity: XeroIdentity
    holder: str
    # How long a refresh claim holds off the other workers (longer than a token call can take).
    refresh_claim: float = 20.0
    # Refresh this long before the access token expires, so no call goes out with a dying token.
    refresh_margin: float = 120.0
    _cache: dict[str, _CachedToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- reading ---------------------------------------------------------------------------------
    def get(self, connection_id: str) -> ConnectionRow:
        require_connection_id(connection_id)
        with UnitOfWork(self.db, write=False) as uow:
            row = uow.connections.get_connection(connection_id)
        if row is None:
            raise not_found(
                Reason.CONNECTION_NOT_FOUND, f"no connection {connection_id!r}; connect it with ConnectOrganisation"
            )
        return row

    def tokens_of(self, row: ConnectionRow) -> Tokens:
        if row.token_box is None:
            raise failed_precondition(
                Reason.CONNECTION_HAS_NO_TOKENS,
                f"connection {row.connection_id!r} holds no Xero tokens ({row.state}); connect the organisation "
                "again with ConnectOrganisation",
                [PreconditionViolation("CONNECTION_STATE", f"connections/{row.connection_id}", row.state)],
            )
        try:
            return self.vault.open(Sealed(row.token_key_id, row.token_box), row.connection_id)
        except TokenKeyError as exc:
            raise failed_precondition(
                Reason.TOKEN_KEY_MISSING, str(exc), [PreconditionViolation("TOKEN_KEY", row.token_key_id, str(exc))]
            ) from exc

    # -- tokens for calls --------------------------------------------------------------------------
    def credentials(self, row: ConnectionRow) -> Credentials:
        """The access token to call Xero with, refreshed first when it is about to expire; it
        carries its token version, which a 401 reports back to `after_unauthorised`."""
        with self._lock:
            cached = self._cache.get(row.connection_id)
        if cached is None or cached.version < row.token_version:
            tokens = self.tokens_of(row)
            # Refresh ahead by the margin, or a quarter of the token's life when that is shorter.
            margin = int(self.refresh_margin * US)
            if row.access_expires_us and row.token_update_us:
                margin = min(margin, (row.access_expires_us - row.token_update_us) // 4)
            cached = _CachedToken(row.token_version, tokens.access_token, row.access_expires_us - margin)
            with self._lock:
                self._cache[row.connection_id] = cached
        expiring = row.access_expires_us and cached.refresh_at_us < now_us()
        if expiring and row.xero_app and row.state == ConnectionState.CONNECTED:
            try:
                return self.credentials(self.refresh(row.connection_id, cached.version).row)
            except XerolinkError as exc:
                if row.access_expires_us <= now_us():
                    raise
                # Refreshing early failed; the token still works until it expires. Try again in a
                # few seconds rather than before every call.
                cached.refresh_at_us = now_us() + 5 * US
                log.warning("early refresh failed: %s", exc.message, extra={"connection_id": row.connection_id})
        return Credentials(
            row.xero_base_url, row.xero_tenant_id, cached.access_token, row.connection_id, cached.version
        )

    def after_unauthorised(self, creds: Credentials) -> Credentials | None:
        """Xero answered 401 to `creds`: refresh once (whoever else saw the 401 too) and return the
        new credentials; None when the connection cannot refresh."""
        row = self.get(creds.connection_id)
        if not row.xero_app and row.state == ConnectionState.CONNECTED:
            # Fixed tokens, which nothing refreshes: Xero no longer takes them, and only a consent
            # (ConnectOrganisation) gives the connection tokens again. Its work waits for that.
            self.refused(
                creds,
                "Xero answered 401 to the connection's fixed tokens, which no Xero app refreshes; connect the "
                "organisation (ConnectOrganisation)",
            )
            return None
        if not row.xero_app or row.state != ConnectionState.CONNECTED:
            return None
        try:
            fresh = self.refresh(creds.connection_id, creds.token_version).row
        except XerolinkError as exc:
            log.warning("refresh after a 401 failed: %s", exc.message, extra={"connection_id": creds.connection_id})
            return None
        return self.credentials(fresh)

    def refused(self, creds: Credentials, message: str) -> None:
        """Xero refused a call made with `creds` in a way only a new consent mends (403 to a valid
        token once the organisation's connection to the app was removed in Xero): the connection
        needs reconnecting, and its work waits, not counted as an attempt. Left alone when its
        tokens moved on since (a reconnect meanwhile)."""
        if run_in_transaction(
            self.db, lambda uow: uow.connections.mark_needs_reconnect(creds.connection_id, creds.token_version, message)
        ):
            log.warning("connection needs reconnecting: %s", message, extra={"connection_id": creds.connection_id})

    def refresh(self, connection_id: str, seen_version: int | None = None) -> RefreshOutcome:
        """Makes sure the connection holds a token newer than `seen_version` (default: the one
        stored now). Exactly one caller exchanges; the others wait for and reuse its result."""
        deadline = time.monotonic() + self.refresh_claim * 2
        while True:
            row = self.get(connection_id)
            if row.state == ConnectionState.DISCONNECTED:
                raise failed_precondition(
                    Reason.CONNECTION_DISCONNECTED,
                    f"connection {connection_id!r} is disconnected; connect it again with ConnectOrganisation",
                    [
                        PreconditionViolation(
                            "CONNECTION_STATE", f"connections/{connection_id}", ConnectionState.DISCONNECTED
                        )
                    ],
                )
            if seen_version is None:
                seen_version = row.token_version
            if row.token_version > seen_version:
                if row.state == ConnectionState.NEEDS_RECONNECT:
                    # Another caller's refresh found the organisation gone: the same answer here.
                    raise failed_precondition(
                        Reason.CONNECTION_NEEDS_RECONNECT,
                        f"connection {connection_id!r} needs reconnecting ({row.last_error}); connect the "
                        "organisation again with ConnectOrganisation",
                        [
                            PreconditionViolation(
                                "CONNECTION_STATE", f"connections/{connection_id}", ConnectionState.NEEDS_RECONNECT
                            )
                        ],
                    )
                return RefreshOutcome(row, exchanged=False)
            if not row.xero_app:
                raise failed_precondition(
                    Reason.CONNECTION_CANNOT_REFRESH,
                    f"connection {connection_id!r} was registered with fixed tokens and no Xero app; connect it "
                    "with ConnectOrganisation to have its tokens refreshed",
                    [PreconditionViolation("XERO_APP", f"connections/{connection_id}", "no Xero app")],
                )
            # Each attempt claims under a name of its own: a claim whose commit went unconfirmed
            # is read back by it, and this poster's other threads never take it for theirs.
            attempt = f"{self.holder[:100]}:{uuid.uuid4().hex[:12]}"
            try:
                claimed = run_in_transaction(
                    self.db, partial(self._claim, connection_id, seen_version, now_us(), attempt)
                )
            except CommitMayHaveGoneThrough:
                claimed = self.get(connection_id).refresh_holder == attempt
            if claimed:
                return RefreshOutcome(self._exchange(row, attempt), exchanged=True)
            if time.monotonic() > deadline:
                raise unavailable(
                    Reason.REFRESH_IN_PROGRESS,
                    f"another worker is refreshing connection {connection_id!r} and has not finished; retry shortly",
                    retry_after_seconds=1.0,
                )
            time.sleep(0.02)

    def _exchange(self, row: ConnectionRow, holder: str) -> ConnectionRow:
        cid = row.connection_id
        try:
            app = self.apps.get(row.xero_app)
            tokens = self.tokens_of(row)
            grant = self.identity.refresh(app, tokens.refresh_token)
        except Uncertain as exc:
            # The refresh token may have rotated at Xero with the answer lost: keep the previous
            # one, which Xero honours during its grace period, and let the next attempt recover.
            self._release(cid, holder)
            raise unavailable(
                Reason.XERO_TOKEN_NO_ANSWER,
                f"Xero's token endpoint did not answer ({exc}); retry: the previous refresh token stays valid "
                "for about 30 minutes",
                retry_after_seconds=1.0,
            ) from exc
        except TokenRefused as exc:
            if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                message = (
                    f"Xero refused the refresh ({exc}); an administrator must connect the organisation again "
                    "(ConnectOrganisation on this connection)"
                )
                self._release(cid, holder, state=ConnectionState.NEEDS_RECONNECT, last_error=message)
                raise failed_precondition(
                    Reason.CONNECTION_NEEDS_RECONNECT,
                    message,
                    [PreconditionViolation("CONNECTION_STATE", f"connections/{cid}", ConnectionState.NEEDS_RECONNECT)],
                ) from exc
            self._release(cid, holder)
            raise unavailable(Reason.XERO_TOKEN_ERROR, f"Xero's token endpoint answered {exc}; retry shortly") from exc
        except AppNotConfigured as exc:
            self._release(cid, holder)
            raise failed_precondition(
                Reason.XERO_APP_NOT_CONFIGURED,
                str(exc),
                [PreconditionViolation("XERO_APP", row.xero_app or "default", str(exc))],
            ) from exc
        except BaseException:
            self._release(cid, holder)
            raise
        values = self._token_values(cid, grant, tokens.refresh_token)
        listed = self._organisation_listed(row, grant.access_token)
        if listed is None:
            # Unknown: the state stays as it is when the tokens are stored (a 403 may have marked
            # the connection meanwhile); the rotated tokens are kept, as the old refresh token is spent.
            del values["state"], values["last_error"]
        elif not listed:
            values["state"] = ConnectionState.NEEDS_RECONNECT
            values["last_error"] = self._not_listed(row).message
        try:
            stored = run_in_transaction(
                self.db,
                lambda uow: uow.connections.store_tokens(cid, row.token_version, holder, values),
            )
        except DuplicateKey:
            # Connected again it would be a second connected connection to its organisation
            # (revision 0011 marked it needs_reconnect for that): say so, not an internal error.
            self._release(cid, holder)
            with UnitOfWork(self.db, write=False) as uow:
                require_tenant_free(uow.connections, row.xero_tenant_id, cid)
            raise
        if not stored:
            log.warning("refresh claim lapsed before the tokens were stored", extra={"connection_id": cid})
        log.info("refreshed the Xero tokens", extra={"connection_id": cid})
        fresh = self.get(cid)
        if listed is False:
            raise self._not_listed(row)
        if listed is None and fresh.state != ConnectionState.CONNECTED:
            raise unavailable(
                Reason.XERO_UNREACHABLE,
                f"refreshed connection {cid!r}'s tokens, but could not list Xero's connections to check that "
                f"organisation {row.xero_tenant_id} is connected to the app; it stays {fresh.state}: retry",
                retry_after_seconds=1.0,
            )
        return fresh

    def _organisation_listed(self, row: ConnectionRow, access_token: str) -> bool | None:
        """Whether Xero's `GET /connections` lists the connection's organisation for the new token;
        None when it could not be read. Xero refreshes the token of an organisation whose connection
        to the app was removed in Xero and answers its calls 403 (XeroAPI/Xero-OpenAPI#585), so the
        refresh alone does not say the organisation is still connected: every refresh asks, and a
        403 that marks the connection while a refresh is under way is never written over unasked."""
        try:
            tenants = self.identity.connections(row.xero_base_url, access_token)
        except Exception as exc:  # whatever the answer, the rotated pair must still be stored
            log.warning(
                "could not list Xero's connections after a refresh: %s", exc, extra={"connection_id": row.connection_id}
            )
            return None
        return any(str(t.get("tenantId", "")).lower() == row.xero_tenant_id.lower() for t in tenants)

    @staticmethod
    def _not_listed(row: ConnectionRow) -> XerolinkError:
        return failed_precondition(
            Reason.CONNECTION_NEEDS_RECONNECT,
            f"Xero no longer lists organisation {row.xero_tenant_id} among the app's connections (it was removed in "
            "Xero); an administrator must connect it again (ConnectOrganisation on this connection)",
            [
                PreconditionViolation(
                    "CONNECTION_STATE", f"connections/{row.connection_id}", ConnectionState.NEEDS_RECONNECT
                )
            ],
        )

    def _claim(self, connection_id: str, version: int, now: int, holder: str, uow: UnitOfWork) -> bool:
        until = now + int(self.refresh_claim * US)
        return uow.connections.claim_refresh(connection_id, version, holder, now, until)

    def _release(self, connection_id: str, holder: str, **values: Any) -> None:
        run_in_transaction(self.db, lambda uow: uow.connections.release_refresh(connection_id, holder, **values))

    def _token_values(self, connection_id: str, grant: TokenGrant, previous_refresh: str = "") -> dict[str, Any]:
        sealed = self.vault.seal(Tokens(grant.access_token, grant.refresh_token or previous_refresh), connection_id)
        now = now_us()
        return {
            "token_key_id": sealed.key_id,
            "token_box": sealed.box,
            "access_expires_us": now + int(grant.expires_in * US),
            "token_update_us": now,
            "state": ConnectionState.CONNECTED,
            "last_error": "",
        }

    # -- connect -----------------------------------------------------------------------------------


def reseal_with_active_key(db: Database, vault: TokenVault) -> int:
    """Key rotation: tokens still sealed with an older key are sealed again with the active one
    (the older key must stay configured until this has run on every registry)."""
    with UnitOfWork(db, write=False) as uow:
        stale = [
            r.connection_id
            for r in uow.connections.all_connections()
            if r.token_box is not None and r.token_key_id != vault.active
        ]

    def reseal(uow: UnitOfWork, *, connection_id: str) -> bool:
        row = uow.connections.get_connection(connection_id)
        if row is None or row.token_box is None or row.token_key_id == vault.active:
            return False
        sealed = vault.seal(vault.open(Sealed(row.token_key_id, row.token_box), connection_id), connection_id)
        row.token_key_id, row.token_box = sealed.key_id, sealed.box
        uow.connections.save(row)
        return True

    done = 0
    for connection_id in stale:
        try:
            done += run_in_transaction(db, partial(reseal, connection_id=connection_id))
        except TokenKeyError as exc:
            log.error("cannot re-seal tokens: %s", exc, extra={"connection_id": connection_id})
    if done:
        log.info("re-sealed the tokens of %d connections with key %s", done, vault.active)
    return done
