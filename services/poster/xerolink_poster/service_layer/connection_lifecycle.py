"""The connection lifecycle: connect an organisation (OAuth2 code exchange, tenant from
/connections, Organisation and chart read), keep its access token fresh with exactly one worker
exchanging the rotating refresh token, disconnect, and keep the account allocation in step with
the chart.

One refresh at a time: a worker that finds the access token expiring (or gets a 401) claims the
refresh with a compare-and-swap on the connection row (token_version unchanged and no live
claim); the others wait until the version moves and reuse the winner's token. The winner stores
the rotated pair as the next version in the same statement that releases the claim. A refresh
whose answer is lost keeps the previous refresh token, which Xero honours for a grace period
(about 30 minutes), so the next attempt recovers the chain instead of killing it."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from google.protobuf import timestamp_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import (
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    failed_precondition,
    invalid_argument,
    not_found,
    unavailable,
)

from xerolink_poster.adapters import connection_store
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.token_vault import Sealed, TokenKeyError, Tokens, TokenVault
from xerolink_poster.adapters.xero_client import Credentials, Uncertain
from xerolink_poster.adapters.xero_identity import (
    AppNotConfigured,
    TokenGrant,
    TokenRefused,
    XeroApps,
    XeroIdentity,
    XeroRefused,
)
from xerolink_poster.domain import allocation
from xerolink_poster.service_layer.connections import (
    CONNECTION_ID,
    MAX_URL,
    context_violations,
    name_ok,
    require_connection_id,
    require_tenant_free,
    url_ok,
)
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)

CONNECTED = "connected"
NEEDS_RECONNECT = "needs_reconnect"
DISCONNECTED = "disconnected"
DEFAULT_XERO_API = "https://api.xero.com"
MAX_CODE = 2048
US = 1_000_000


@dataclass(frozen=True)
class ConnectRequest:
    connection_id: str
    authorization_code: str
    redirect_uri: str = ""
    xero_app: str = ""
    xero_tenant_id: str = ""
    xero_base_url: str = ""
    context: mapper_pb2.MappingContext | None = None


@dataclass(frozen=True)
class ConnectOutcome:
    row: ConnectionRow
    replaced: bool
    previous_tenant_id: str
    # Request fields an existing connection does not take, so the answer can name them.
    ignored_fields: tuple[str, ...] = ()


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
class ConnectionKeeper:
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
            row = uow.registry.get_connection(connection_id)
        if row is None:
            raise not_found(
                "CONNECTION_NOT_FOUND", f"no connection {connection_id!r}; connect it with ConnectOrganisation"
            )
        return row

    def tokens_of(self, row: ConnectionRow) -> Tokens:
        if row.token_box is None:
            raise failed_precondition(
                "CONNECTION_HAS_NO_TOKENS",
                f"connection {row.connection_id!r} holds no Xero tokens ({row.state}); connect the organisation "
                "again with ConnectOrganisation",
                [PreconditionViolation("CONNECTION_STATE", f"connections/{row.connection_id}", row.state)],
            )
        try:
            return self.vault.open(Sealed(row.token_key_id, row.token_box), row.connection_id)
        except TokenKeyError as exc:
            raise failed_precondition(
                "TOKEN_KEY_MISSING", str(exc), [PreconditionViolation("TOKEN_KEY", row.token_key_id, str(exc))]
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
        if expiring and row.xero_app and row.state == CONNECTED:
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
        if not row.xero_app or row.state != CONNECTED:
            return None
        try:
            fresh = self.refresh(creds.connection_id, creds.token_version).row
        except XerolinkError as exc:
            log.warning("refresh after a 401 failed: %s", exc.message, extra={"connection_id": creds.connection_id})
            return None
        return self.credentials(fresh)

    def refresh(self, connection_id: str, seen_version: int | None = None) -> RefreshOutcome:
        """Makes sure the connection holds a token newer than `seen_version` (default: the one
        stored now). Exactly one caller exchanges; the others wait for and reuse its result."""
        deadline = time.monotonic() + self.refresh_claim * 2
        while True:
            row = self.get(connection_id)
            if row.state == DISCONNECTED:
                raise failed_precondition(
                    "CONNECTION_DISCONNECTED",
                    f"connection {connection_id!r} is disconnected; connect it again with ConnectOrganisation",
                    [PreconditionViolation("CONNECTION_STATE", f"connections/{connection_id}", DISCONNECTED)],
                )
            if seen_version is None:
                seen_version = row.token_version
            if row.token_version > seen_version:
                return RefreshOutcome(row, exchanged=False)
            if not row.xero_app:
                raise failed_precondition(
                    "CONNECTION_CANNOT_REFRESH",
                    f"connection {connection_id!r} was registered with fixed tokens and no Xero app; connect it "
                    "with ConnectOrganisation to have its tokens refreshed",
                    [PreconditionViolation("XERO_APP", f"connections/{connection_id}", "no Xero app")],
                )
            claimed = run_in_transaction(self.db, partial(self._claim, connection_id, seen_version, now_us()))
            if claimed:
                return RefreshOutcome(self._exchange(row), exchanged=True)
            if time.monotonic() > deadline:
                raise unavailable(
                    "REFRESH_IN_PROGRESS",
                    f"another worker is refreshing connection {connection_id!r} and has not finished; retry shortly",
                    retry_after_seconds=1.0,
                )
            time.sleep(0.02)

    def _exchange(self, row: ConnectionRow) -> ConnectionRow:
        cid = row.connection_id
        try:
            app = self.apps.get(row.xero_app)
            tokens = self.tokens_of(row)
            grant = self.identity.refresh(app, tokens.refresh_token)
        except Uncertain as exc:
            # The refresh token may have rotated at Xero with the answer lost: keep the previous
            # one, which Xero honours during its grace period, and let the next attempt recover.
            self._release(cid)
            raise unavailable(
                "XERO_TOKEN_NO_ANSWER",
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
                self._release(cid, state=NEEDS_RECONNECT, last_error=message)
                raise failed_precondition(
                    "CONNECTION_NEEDS_RECONNECT",
                    message,
                    [PreconditionViolation("CONNECTION_STATE", f"connections/{cid}", NEEDS_RECONNECT)],
                ) from exc
            self._release(cid)
            raise unavailable("XERO_TOKEN_ERROR", f"Xero's token endpoint answered {exc}; retry shortly") from exc
        except AppNotConfigured as exc:
            self._release(cid)
            raise failed_precondition(
                "XERO_APP_NOT_CONFIGURED",
                str(exc),
                [PreconditionViolation("XERO_APP", row.xero_app or "default", str(exc))],
            ) from exc
        except BaseException:
            self._release(cid)
            raise
        values = self._token_values(cid, grant, tokens.refresh_token)
        stored = run_in_transaction(
            self.db,
            lambda uow: connection_store.store_tokens(uow.session, cid, row.token_version, self.holder, values),
        )
        if not stored:
            log.warning("refresh claim lapsed before the tokens were stored", extra={"connection_id": cid})
        log.info("refreshed the Xero tokens", extra={"connection_id": cid})
        return self.get(cid)

    def _claim(self, connection_id: str, version: int, now: int, uow: UnitOfWork) -> bool:
        until = now + int(self.refresh_claim * US)
        return connection_store.claim_refresh(uow.session, connection_id, version, self.holder, now, until)

    def _release(self, connection_id: str, **values: Any) -> None:
        run_in_transaction(
            self.db, lambda uow: connection_store.release_refresh(uow.session, connection_id, self.holder, **values)
        )

    def _token_values(self, connection_id: str, grant: TokenGrant, previous_refresh: str = "") -> dict[str, Any]:
        sealed = self.vault.seal(Tokens(grant.access_token, grant.refresh_token or previous_refresh), connection_id)
        now = now_us()
        return {
            "token_key_id": sealed.key_id,
            "token_box": sealed.box,
            "access_expires_us": now + int(grant.expires_in * US),
            "token_update_us": now,
            "state": CONNECTED,
            "last_error": "",
        }

    # -- connect -----------------------------------------------------------------------------------
    def connect(self, request: ConnectRequest) -> ConnectOutcome:
        with UnitOfWork(self.db, write=False) as uow:
            # A malformed id is refused by _validate_connect, never looked up.
            well_formed = CONNECTION_ID.match(request.connection_id) is not None
            existing = uow.registry.get_connection(request.connection_id) if well_formed else None
        _validate_connect(request, existing is None)
        base_url = (existing.xero_base_url if existing else request.xero_base_url or DEFAULT_XERO_API).rstrip("/")
        app_name = request.xero_app or (existing.xero_app if existing else "") or "default"
        try:
            app = self.apps.get(app_name)
        except AppNotConfigured as exc:
            raise failed_precondition(
                "XERO_APP_NOT_CONFIGURED", str(exc), [PreconditionViolation("XERO_APP", app_name, str(exc))]
            ) from exc
        try:
            grant = self.identity.exchange_code(app, request.authorization_code, request.redirect_uri)
        except TokenRefused as exc:
            raise invalid_argument(
                "AUTHORIZATION_CODE_REFUSED",
                f"Xero refused the authorisation code ({exc}); codes are single-use and expire within minutes: "
                "start the consent again",
                [FieldViolation("authorization_code", f"refused by Xero: {exc.error}")],
            ) from exc
        except Uncertain as exc:
            raise unavailable("XERO_UNREACHABLE", f"Xero's token endpoint did not answer ({exc}); retry") from exc
        tenant = self._choose_tenant(base_url, grant.access_token, request.xero_tenant_id)
        tenant_id = str(tenant.get("tenantId", "")).lower()
        organisation, accounts = self._read_organisation(base_url, grant.access_token, tenant_id)
        chart = chart_from_accounts(accounts)
        context = mapper_pb2.MappingContext()
        if existing is not None:
            context.ParseFromString(existing.mapping_context)
        elif request.context is not None:
            context.CopyFrom(request.context)
        if not context.HasField("connected_at"):
            context.connected_at.CopyFrom(_timestamp(now_us()))
        expected_currency = context.base_currency_code
        base_currency = str(organisation.get("BaseCurrency") or "")
        context.base_currency_code = base_currency or expected_currency
        del context.chart[:]
        context.chart.extend(chart)
        warnings = allocation.organisation_warnings(
            bool(organisation.get("IsDemoCompany")),
            str(organisation.get("Class") or ""),
            base_currency,
            expected_currency,
        )
        facts = {
            "name": str(organisation.get("Name") or tenant.get("tenantName") or ""),
            "organisation_id": str(organisation.get("OrganisationID") or ""),
            "demo_company": bool(organisation.get("IsDemoCompany")),
            "organisation_class": str(organisation.get("Class") or ""),
            "base_currency_code": base_currency,
            "chart_account_count": len(chart),
            "read_us": now_us(),
            "warnings": [{"code": w.code, "message": w.message} for w in warnings],
        }
        cid = request.connection_id
        values = self._token_values(cid, grant)
        values.update(
            xero_tenant_id=tenant_id,
            xero_app=app_name,
            xero_connection_id=str(tenant.get("id", "")),
            organisation=json.dumps(facts),
            mapping_context=context.SerializeToString(),
            access_token="",
            refresh_token="",
            refresh_holder="",
            refresh_until_us=0,
        )

        def write(uow: UnitOfWork) -> tuple[ConnectionRow, str]:
            require_tenant_free(uow.registry, tenant_id, cid)
            row = uow.registry.get_connection(cid)
            previous = ""
            if row is None:
                row = ConnectionRow(connection_id=cid, xero_base_url=base_url, create_us=now_us(), **values)
                uow.registry.add_connection(row)
                return row, previous
            previous = row.xero_tenant_id
            if previous != tenant_id:
                # Contacts found or created in the previous organisation do not exist in this one.
                connection_store.forget_contacts(uow.session, cid)
                connection_store.move_outbox(uow.session, cid, tenant_id)
            for name, value in values.items():
                setattr(row, name, value)
            row.token_version += 1
            uow.session.add(row)
            return row, previous

        _, previous = run_in_transaction(self.db, write)
        for w in warnings:
            log.warning("connected organisation: %s", w.code, extra={"connection_id": cid, "tenant_id": tenant_id})
        replaced = bool(previous) and previous != tenant_id
        ignored: list[str] = []
        if existing is not None and request.context is not None:
            ignored.append("mapping_context")
        if existing is not None and request.xero_base_url and request.xero_base_url.rstrip("/") != base_url:
            ignored.append("xero_base_url")
        return ConnectOutcome(self.get(cid), replaced, previous if replaced else "", tuple(ignored))

    def _choose_tenant(self, base_url: str, access_token: str, wanted: str) -> dict[str, Any]:
        try:
            tenants = [
                t
                for t in self.identity.connections(base_url, access_token)
                if t.get("tenantType", "ORGANISATION") == "ORGANISATION"
            ]
        except (Uncertain, XeroRefused) as exc:
            raise unavailable("XERO_UNREACHABLE", f"could not list Xero's tenant connections ({exc}); retry") from exc
        if wanted:
            for tenant in tenants:
                if str(tenant.get("tenantId", "")).lower() == wanted.lower():
                    return tenant
            raise failed_precondition(
                "TENANT_NOT_CONNECTED",
                f"the consent did not connect organisation {wanted}; connected: {_tenant_list(tenants)}. Choose one "
                "of those, or consent again selecting that organisation",
                [PreconditionViolation("TENANT_NOT_CONNECTED", wanted, "not in Xero's /connections for this app")],
            )
        if len(tenants) == 1:
            return tenants[0]
        if not tenants:
            raise failed_precondition(
                "NO_TENANT_CONNECTED",
                "the consent connected no Xero organisation; consent again and select one",
                [PreconditionViolation("NO_TENANT_CONNECTED", "connections", "empty")],
            )
        raise invalid_argument(
            "TENANT_AMBIGUOUS",
            f"the app is connected to several organisations: {_tenant_list(tenants)}; name one in xero_tenant_id",
            [FieldViolation("xero_tenant_id", "required when Xero lists more than one organisation")],
        )

    def _read_organisation(
        self, base_url: str, access_token: str, tenant_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            return (
                self.identity.organisation(base_url, access_token, tenant_id),
                self.identity.accounts(base_url, access_token, tenant_id),
            )
        except (Uncertain, XeroRefused) as exc:
            raise unavailable("XERO_UNREACHABLE", f"could not read the organisation from Xero ({exc}); retry") from exc

    # -- disconnect ----------------------------------------------------------------------------------
    def disconnect(self, connection_id: str) -> ConnectionRow:
        row = self.get(connection_id)
        if row.state == DISCONNECTED:
            return row
        note = ""
        if row.token_box is not None and row.xero_connection_id:
            try:
                creds = self.credentials(row)
                self.identity.disconnect(row.xero_base_url, creds.access_token, row.xero_connection_id)
            except (XerolinkError, Uncertain, XeroRefused) as exc:
                note = (
                    f"Xero did not confirm the disconnection ({exc}); remove the app under Settings > Connected "
                    "apps in Xero"
                )
                log.warning("disconnect at Xero not confirmed: %s", exc, extra={"connection_id": connection_id})

        def write(uow: UnitOfWork) -> None:
            current = uow.registry.get_connection(connection_id)
            assert current is not None
            current.state = DISCONNECTED
            current.token_box = None
            current.token_key_id = ""
            current.access_expires_us = 0
            current.token_version += 1
            current.refresh_holder = ""
            current.refresh_until_us = 0
            current.last_error = note
            uow.session.add(current)

        run_in_transaction(self.db, write)
        with self._lock:
            self._cache.pop(connection_id, None)
        return self.get(connection_id)

    # -- allocation ----------------------------------------------------------------------------------
    def discrepancies(
        self, connection_id: str, refresh_chart: bool = False
    ) -> tuple[ConnectionRow, list[allocation.Discrepancy]]:
        row = self.get(connection_id)
        if refresh_chart:
            creds = self.credentials(row)
            try:
                accounts = self.identity.accounts(creds.base_url, creds.access_token, creds.tenant_id)
            except (Uncertain, XeroRefused) as exc:
                raise unavailable("XERO_UNREACHABLE", f"could not read the chart from Xero ({exc}); retry") from exc
            chart = chart_from_accounts(accounts)

            def write(uow: UnitOfWork) -> None:
                current = uow.registry.get_connection(connection_id)
                assert current is not None
                context = context_of(current)
                del context.chart[:]
                context.chart.extend(chart)
                current.mapping_context = context.SerializeToString()
                uow.session.add(current)

            run_in_transaction(self.db, write)
            row = self.get(connection_id)
        return row, allocation_discrepancies(context_of(row))

    def remap(
        self, connection_id: str, changes: Mapping[str, str], validate_only: bool
    ) -> tuple[dict[str, str], list[allocation.Discrepancy]]:
        if not changes:
            raise invalid_argument(
                "NOTHING_TO_REMAP",
                "name at least one allocation function and its new account code",
                [FieldViolation("account_allocation", "required: function -> Xero account code")],
            )
        if len(changes) > len(allocation.FUNCTIONS):
            raise invalid_argument(
                "ALLOCATION_INVALID",
                f"{len(changes)} functions named; there are {len(allocation.FUNCTIONS)} allocation functions",
                [FieldViolation("account_allocation", f"at most {len(allocation.FUNCTIONS)} functions, each once")],
            )
        row = self.get(connection_id)
        context = context_of(row)
        problems = allocation.remap_problems(changes, chart_entries(context))
        if problems:
            raise invalid_argument(
                "ALLOCATION_INVALID",
                "the allocation cannot be changed; fix the functions listed (use active accounts of the chart)",
                [FieldViolation(f"account_allocation[{f}]", why) for f, why in sorted(problems.items())],
            )
        merged = dict(context.account_allocation)
        merged.update(changes)
        if validate_only:
            return merged, allocation.discrepancies(merged, chart_entries(context))

        def write(uow: UnitOfWork) -> ConnectionRow:
            current = uow.registry.get_connection(connection_id)
            assert current is not None
            fresh = context_of(current)
            for function, code in changes.items():
                fresh.account_allocation[function] = code
            current.mapping_context = fresh.SerializeToString()
            uow.session.add(current)
            return current

        saved = run_in_transaction(self.db, write)
        context = context_of(saved)
        return dict(context.account_allocation), allocation_discrepancies(context)


# -- helpers shared with posting and the gRPC layer ----------------------------------------------------
def context_of(row: ConnectionRow) -> mapper_pb2.MappingContext:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(row.mapping_context)
    return context


def chart_entries(context: mapper_pb2.MappingContext) -> list[allocation.ChartEntry]:
    return [allocation.ChartEntry(a.code, a.name, a.status) for a in context.chart]


def allocation_discrepancies(context: mapper_pb2.MappingContext) -> list[allocation.Discrepancy]:
    return allocation.discrepancies(dict(context.account_allocation), chart_entries(context))


def check_postable(row: ConnectionRow) -> None:
    """Refuses a post, before anything is queued, when the connection is disconnected or its
    allocation names accounts the organisation's chart lacks."""
    if row.state == DISCONNECTED:
        raise failed_precondition(
            "CONNECTION_DISCONNECTED",
            f"connection {row.connection_id!r} is disconnected; connect the organisation again with "
            "ConnectOrganisation before posting",
            [PreconditionViolation("CONNECTION_STATE", f"connections/{row.connection_id}", DISCONNECTED)],
        )
    broken = allocation_discrepancies(context_of(row))
    if broken:
        codes = ", ".join(f"{d.function}={d.account_code}" for d in broken)
        raise failed_precondition(
            allocation.ALLOCATION_BROKEN,
            f"the account allocation names accounts the Xero organisation cannot take ({codes}); re-map them with "
            "RemapAccounts (GetAllocationDiscrepancies lists them) or fix the chart in Xero",
            [PreconditionViolation(d.problem, d.account_code, d.description) for d in broken],
        )


def organisation_facts(row: ConnectionRow) -> dict[str, Any]:
    try:
        facts = json.loads(row.organisation or "{}")
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


def chart_from_accounts(accounts: list[dict[str, Any]]) -> list[mapper_pb2.ChartAccount]:
    """Xero's Accounts as the mapper's chart; accounts without a code cannot be allocated."""
    chart = []
    for account in accounts:
        code = str(account.get("Code") or "")
        if not code:
            continue
        kind = str(account.get("Type") or "")
        chart.append(
            mapper_pb2.ChartAccount(
                code=code,
                name=str(account.get("Name") or ""),
                type=kind,
                status=str(account.get("Status") or "ACTIVE"),
                tax_type=str(account.get("TaxType") or ""),
                enable_payments=kind == "BANK" or bool(account.get("EnablePaymentsToAccount")),
            )
        )
    return chart


def _timestamp(us: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(us)
    return ts


def _tenant_list(tenants: list[dict[str, Any]]) -> str:
    return ", ".join(f"{t.get('tenantName', '?')} ({t.get('tenantId', '?')})" for t in tenants) or "none"


def _validate_connect(request: ConnectRequest, new: bool) -> None:
    violations: list[FieldViolation] = []
    if not CONNECTION_ID.match(request.connection_id):
        violations.append(FieldViolation("connection_id", "1-64 letters, digits, '-' or '_' (e.g. 'firm-42')"))
    if not request.authorization_code or len(request.authorization_code) > MAX_CODE:
        violations.append(
            FieldViolation(
                "authorization_code", f"required: the code Xero redirected with (at most {MAX_CODE} characters)"
            )
        )
    if request.redirect_uri and not url_ok(request.redirect_uri):
        violations.append(FieldViolation("redirect_uri", f"an http(s) URL of at most {MAX_URL} characters"))
    if request.xero_base_url and not url_ok(request.xero_base_url):
        violations.append(FieldViolation("xero_base_url", f"an http(s) URL of at most {MAX_URL} characters"))
    if not name_ok(request.xero_tenant_id):
        violations.append(FieldViolation("xero_tenant_id", "at most 64 characters: a Xero tenant id"))
    if not name_ok(request.xero_app):
        violations.append(FieldViolation("xero_app", "at most 64 characters: a configured Xero app's name"))
    if new:
        context = request.context or mapper_pb2.MappingContext()
        violations += context_violations(context, "mapping_context", require_connected_at=False)
    if violations:
        raise invalid_argument(
            "INVALID_CONNECTION", "the organisation cannot be connected; fix the fields listed", violations
        )


def reseal_with_active_key(db: Database, vault: TokenVault) -> int:
    """Key rotation: tokens still sealed with an older key are sealed again with the active one
    (the older key must stay configured until this has run on every registry)."""
    with UnitOfWork(db, write=False) as uow:
        stale = [
            r.connection_id
            for r in uow.registry.all_connections()
            if r.token_box is not None and r.token_key_id != vault.active
        ]

    def reseal(uow: UnitOfWork, *, connection_id: str) -> bool:
        row = uow.registry.get_connection(connection_id)
        if row is None or row.token_box is None or row.token_key_id == vault.active:
            return False
        sealed = vault.seal(vault.open(Sealed(row.token_key_id, row.token_box), connection_id), connection_id)
        row.token_key_id, row.token_box = sealed.key_id, sealed.box
        uow.session.add(row)
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
