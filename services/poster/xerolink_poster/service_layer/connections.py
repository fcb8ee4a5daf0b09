"""Connections registered directly: the Xero tenant, its tokens (sealed at rest) and the mapping
context. The OAuth2 way in, refresh and disconnect live in connection_lifecycle.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlparse

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import (
    ErrorCode,
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    invalid_argument,
    not_found,
)
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.token_vault import Tokens, TokenVault
from xerolink_poster.domain.matters import NAME_MAX
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer.ports import ConnectionRepository
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_until_confirmed

CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_URL = 2048
MAX_TOKEN = 8192
# Profiles and methods this version maps; any other number (a newer client's enum) is refused
# here rather than silently treated as the default.
_PROFILES = frozenset(mapper_pb2.PolicyProfile.values())
_METHODS = frozenset(mapper_pb2.AccountingMethod.values())
_LEDGERS = frozenset(mapper_pb2.OrganisationLedgers.values())


def require_connection_id(connection_id: str) -> None:
    """A request without a connection id, or with one no connection can have, is the caller's
    mistake, not a connection that is missing; and it is never sent to the registry (PostgreSQL
    refuses text with NUL characters)."""
    if not connection_id:
        raise invalid_argument(
            Reason.CONNECTION_REQUIRED,
            "connection_id is required: the connection the request is about",
            [FieldViolation("connection_id", "required: the id the connection was created or connected with")],
        )
    if not CONNECTION_ID.fullmatch(connection_id):
        raise invalid_argument(
            Reason.INVALID_CONNECTION_ID,
            "connection_id is not one a connection can have; use the id it was created or connected with",
            [FieldViolation("connection_id", "1-64 letters, digits, '-' or '_' (e.g. 'firm-42')")],
        )


def text_ok(text: str) -> bool:
    """No control characters but tab and line breaks: PostgreSQL refuses NUL in text, and none of
    the others belongs in an audit trail or an id."""
    return not any((ord(c) < 32 and c not in "\t\n\r") or c == "\x7f" for c in text)


MAX_REQUEST_ID = 128


def request_id_violations(request_id: str) -> list[FieldViolation]:
    """An idempotency key (AIP-155) is stored with what it started: short, printable text."""
    if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
        return [FieldViolation("request_id", f"at most {MAX_REQUEST_ID} printable characters, e.g. a UUID")]
    return []


def url_ok(url: str) -> bool:
    if len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        return False
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def name_ok(value: str, limit: int = 64) -> bool:
    """A tenant id or an app name: printable, no spaces, at most `limit` characters."""
    return len(value) <= limit and value.isprintable() and not any(c.isspace() for c in value)


def context_violations(
    context: mapper_pb2.MappingContext, path: str, require_connected_at: bool = True
) -> list[FieldViolation]:
    violations = []
    if context.ledgers in (mapper_pb2.ORGANISATION_LEDGERS_OFFICE, mapper_pb2.ORGANISATION_LEDGERS_TRUST) and (
        context.profile != mapper_pb2.POLICY_PROFILE_EXTENDED
    ):
        violations.append(
            FieldViolation(f"{path}.ledgers", "OFFICE and TRUST are options of the extended profile (set profile)")
        )
    if int(context.ledgers) not in _LEDGERS:
        violations.append(FieldViolation(f"{path}.ledgers", "an OrganisationLedgers value"))
    if context.linked_division_id <= 0:
        violations.append(FieldViolation(f"{path}.linked_division_id", "required: the linked Actionstep division"))
    if require_connected_at and not context.HasField("connected_at"):
        violations.append(FieldViolation(f"{path}.connected_at", "required: when the integration was connected"))
    if int(context.profile) not in _PROFILES:
        violations.append(
            FieldViolation(f"{path}.profile", "a PolicyProfile value: ACTIONSTEP_COMPATIBLE (default) or EXTENDED")
        )
    if int(context.accounting_method) not in _METHODS:
        violations.append(FieldViolation(f"{path}.accounting_method", "an AccountingMethod value: ACCRUAL or CASH"))
    for function, code in context.account_allocation.items():
        if not function or len(function) > 64 or len(code) > 10:
            violations.append(
                FieldViolation(f"{path}.account_allocation[{function[:64]}]", "a function name and a Xero account code")
            )
    named = [
        *((f"{path}.tax_code_map[{code[:64]}]", t) for code, t in context.tax_code_map.items()),
        *((f"{path}.purchase_tax_code_map[{code[:64]}]", t) for code, t in context.purchase_tax_code_map.items()),
        *((f"{path}.untaxed_line_tax_types.{f.name}", t) for f, t in context.untaxed_line_tax_types.ListFields()),
    ]
    for field, tax_type in named:
        # A Xero TaxType is a short name without spaces (OUTPUT2, TAX001, a GUID); an empty one is
        # reported by preflight as a setting to map.
        if tax_type and (len(tax_type) > 64 or not tax_type.isprintable() or " " in tax_type):
            violations.append(FieldViolation(field, "a Xero TaxType: at most 64 characters, no spaces"))
    violations += _matter_tracking_violations(context, path)
    seen: set[str] = set()
    for index, rate in enumerate(context.tax_rates):
        # Keyed by tax type: a rate without one, or one listed twice, would stand for the wrong rate.
        if not rate.tax_type or rate.tax_type in seen:
            violations.append(
                FieldViolation(f"{path}.tax_rates[{index}].tax_type", "required, once: the Xero TaxType of the rate")
            )
        seen.add(rate.tax_type)
    return violations


def _matter_tracking_violations(context: mapper_pb2.MappingContext, path: str) -> list[FieldViolation]:
    """Reports by matter belong to the extended profile (MappingContext.matter_tracking); its
    category name is at most 100 characters (TrackingCategory.Name, Xero's OpenAPI description),
    without surrounding spaces (Xero does not trim them: XeroAPI/xero-node#539)."""
    if not context.HasField("matter_tracking"):
        return []
    tracking = context.matter_tracking
    violations = []
    if tracking.enabled and context.profile != mapper_pb2.POLICY_PROFILE_EXTENDED:
        violations.append(
            FieldViolation(
                f"{path}.matter_tracking",
                "reports by matter need the extended profile: set profile to POLICY_PROFILE_EXTENDED, or leave "
                "matter_tracking unset",
            )
        )
    name = tracking.category_name
    if len(name) > NAME_MAX or not name.isprintable() or name != name.strip():
        violations.append(
            FieldViolation(
                f"{path}.matter_tracking.category_name",
                f"a Xero tracking category name: at most {NAME_MAX} printable characters without surrounding "
                'spaces, or empty for "Matter"',
            )
        )
    return violations


def create_connection(
    db: Database,
    vault: TokenVault,
    connection_id: str,
    xero_base_url: str,
    xero_tenant_id: str,
    access_token: str,
    refresh_token: str,
    context: mapper_pb2.MappingContext,
    xero_app: str = "",
    then: Callable[[UnitOfWork], object] | None = None,
) -> ConnectionRow:
    """Creates the connection; `then` runs in the same transaction once the row is added (saving
    its routing), so a refusal there leaves nothing behind."""
    violations = []
    if not CONNECTION_ID.fullmatch(connection_id):
        violations.append(
            FieldViolation("connection.connection_id", "1-64 letters, digits, '-' or '_' (e.g. 'firm-42')")
        )
    if not url_ok(xero_base_url):
        violations.append(
            FieldViolation(
                "connection.xero_base_url", f"an http(s) URL such as https://api.xero.com, at most {MAX_URL} characters"
            )
        )
    if not xero_tenant_id or not name_ok(xero_tenant_id):
        violations.append(FieldViolation("connection.xero_tenant_id", "required: the Xero tenant id (xero-tenant-id)"))
    if not access_token or len(access_token) > MAX_TOKEN:
        violations.append(FieldViolation("connection.access_token", "required: a Xero access token"))
    if len(refresh_token) > MAX_TOKEN:
        violations.append(FieldViolation("connection.refresh_token", f"at most {MAX_TOKEN} characters"))
    if not name_ok(xero_app):
        violations.append(FieldViolation("connection.xero_app", "at most 64 characters: a configured Xero app"))
    violations += context_violations(context, "connection.mapping_context")
    if violations:
        raise invalid_argument(
            Reason.INVALID_CONNECTION, "the connection cannot be created; fix the fields listed", violations
        )
    sealed = vault.seal(Tokens(access_token, refresh_token), connection_id)
    row = ConnectionRow(
        connection_id=connection_id,
        xero_base_url=xero_base_url.rstrip("/"),
        xero_tenant_id=xero_tenant_id.lower(),
        mapping_context=context.SerializeToString(),
        create_us=now_us(),
        token_key_id=sealed.key_id,
        token_box=sealed.box,
        token_version=1,
        token_update_us=now_us(),
        xero_app=xero_app,
    )

    def work(uow: UnitOfWork) -> ConnectionRow:
        stored = uow.connections.get_connection(connection_id)
        if stored is not None and stored.token_box == row.token_box:
            return stored  # this request's own row, its COMMIT unconfirmed: no other write seals these tokens
        if stored is not None:
            raise XerolinkError(
                ErrorCode.ALREADY_EXISTS,
                Reason.CONNECTION_EXISTS,
                f"connection {connection_id!r} already exists; use it, or choose another connection_id",
            )
        require_tenant_free(uow.connections, row.xero_tenant_id, connection_id)
        uow.connections.add_connection(row)
        if then is not None:
            then(uow)
        return row

    return run_until_confirmed(db, work)


def live_connections_of_tenant(connections: ConnectionRepository, tenant_id: str, connection_id: str) -> list[str]:
    """The connections to the Xero organisation, other than `connection_id`, that are not disconnected."""
    return [
        c
        for c in connections.connection_ids_of_tenant(tenant_id)
        if c != connection_id
        and (other := connections.get_connection(c)) is not None
        and other.state != ConnectionState.DISCONNECTED
    ]


def require_tenant_free(connections: ConnectionRepository, tenant_id: str, connection_id: str) -> None:
    """One Xero organisation, one live connection: a record's tag ([AS-<kind>-<id>]) and a
    participant's contact number (AS-<id>) name Actionstep records of one connection, so two
    connections posting to one organisation would share contacts (one firm's bill on another's
    client) and take each other's objects for their own after a lost answer."""
    others = live_connections_of_tenant(connections, tenant_id, connection_id)
    if others:
        raise XerolinkError(
            ErrorCode.FAILED_PRECONDITION,
            Reason.TENANT_ALREADY_CONNECTED,
            f"this Xero organisation is already connected as connection {others[0]!r}; post through that "
            "connection, or disconnect it first (DisconnectConnection): two connections to one organisation "
            "would share its contacts and could take each other's records in Xero for their own",
            precondition_violations=[
                PreconditionViolation(
                    Reason.TENANT_ALREADY_CONNECTED, f"connections/{others[0]}", ConnectionState.CONNECTED
                )
            ],
        )


def get_connection(db: Database, connection_id: str) -> ConnectionRow:
    """The connection a request names: INVALID_ARGUMENT for an id no connection can have,
    NOT_FOUND for one that does not exist."""
    require_connection_id(connection_id)
    with UnitOfWork(db, write=False) as uow:
        row = uow.connections.get_connection(connection_id)
    if row is None:
        raise not_found(
            Reason.CONNECTION_NOT_FOUND, f"no connection {connection_id!r}; create it with CreateConnection first"
        )
    return row
