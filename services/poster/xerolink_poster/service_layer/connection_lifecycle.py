"""The connection lifecycle: connect an organisation (OAuth2 code exchange, tenant from
/connections, Organisation and chart read), disconnect, and keep the account allocation in step
with the chart. Keeping the access token fresh is connection_tokens.py's."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import (
    ErrorCode,
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    failed_precondition,
    invalid_argument,
    unavailable,
)
from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, now_us
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.xero_client import Uncertain
from xerolink_poster.adapters.xero_identity import (
    AppNotConfigured,
    TokenRefused,
    XeroRefused,
)
from xerolink_poster.domain import allocation, tax_types
from xerolink_poster.domain import corrections as corrections_dom
from xerolink_poster.domain.records import RecordRef, link_name
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer import outcomes
from xerolink_poster.service_layer.connection_facts import (
    allocation_discrepancies,
    chart_entries,
    chart_from_accounts,
    check_postable,
    clear_setting,
    context_of,
    held_settings,
    organisation_facts,
    set_tax_rates,
    settings_of,
    tax_problems,
    tax_rate_entries,
    tax_warnings,
    tenant_list,
    timestamp_of,
    untaxed_of,
)
from xerolink_poster.service_layer.connection_tokens import ConnectionTokens, RefreshOutcome, reseal_with_active_key
from xerolink_poster.service_layer.connections import (
    CONNECTION_ID,
    MAX_URL,
    context_violations,
    live_connections_of_tenant,
    name_ok,
    require_tenant_free,
    url_ok,
)
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction, run_until_confirmed

log = logging.getLogger(__name__)

__all__ = [
    "ConnectOutcome",
    "ConnectRequest",
    "ConnectionKeeper",
    "RefreshOutcome",
    "check_postable",
    "context_of",
    "reseal_with_active_key",
]

DEFAULT_XERO_API = "https://api.xero.com"
MAX_CODE = 2048


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
class TaxRemap:
    """What RemapTaxTypes asks to change: map entries (code -> tax type) and untaxed fields set."""

    connection_id: str
    sales: Mapping[str, str]
    purchases: Mapping[str, str]
    untaxed: Mapping[str, str]
    validate_only: bool = False

    def codes(self) -> list[tuple[str, str]]:
        return [(f"tax_code_map[{c[:64]}]", c) for c in self.sales] + [
            (f"purchase_tax_code_map[{c[:64]}]", c) for c in self.purchases
        ]

    def settings(self) -> dict[str, str]:
        """Setting -> new tax type, named as tax_types.Problem names settings."""
        return {
            **{f"tax_code_map[{c[:64]}]": t for c, t in self.sales.items()},
            **{f"purchase_tax_code_map[{c[:64]}]": t for c, t in self.purchases.items()},
            **{f"untaxed_line_tax_types.{n}": t for n, t in self.untaxed.items()},
        }

    def apply(self, context: mapper_pb2.MappingContext) -> None:
        context.tax_code_map.update(self.sales)
        context.purchase_tax_code_map.update(self.purchases)
        for name, tax_type in self.untaxed.items():
            setattr(context.untaxed_line_tax_types, name, tax_type)


def _named(row: ConnectionRow) -> str:
    """The row's tenant as an accountant knows it: the organisation's name (read at connect time) first."""
    name = organisation_facts(row).get("name")
    return f"{name!r} ({row.xero_tenant_id})" if isinstance(name, str) and name else row.xero_tenant_id


def _give_up_unknown_outcomes(uow: UnitOfWork, connection_id: str, previous: str, tenant_id: str) -> None:
    """Entries whose last call to the previous organisation had no answer end failed, outcome
    unknown, instead of following the connection: their look-up would be made in the new
    organisation, find nothing there, and create them again, with the previous organisation
    perhaps holding them too and nothing saying so. The message says where to look."""
    now = now_us()
    for row in uow.outbox.uncertain_outbox(connection_id):
        link = uow.links.get_link_by_id(row.link_id)
        if link is None:
            continue
        tag = f"[AS-{payloads.kind_code(link.kind)}-{link.record_id}]"
        outcomes.record_rejected(
            uow,
            row,
            link,
            Reason.OUTCOME_UNKNOWN_IN_PREVIOUS_ORGANISATION,
            f"connection {connection_id} was connected to Xero organisation {tenant_id} while the last call of "
            f"{link_name(connection_id, RecordRef(link.kind, link.record_id))} to organisation {previous} had no "
            f"answer: look in {previous} for the reference {tag} and void or delete what you find there, then "
            "post the record again to create it in the new organisation",
            [],
            now,
            outcome_unknown=True,
        )


def _end_corrections_in_previous_organisation(
    uow: UnitOfWork, connection_id: str, previous: str, tenant_id: str
) -> None:
    """Corrections not finished end where they stand: their objects are in the previous
    organisation, which the connection no longer calls. Applied again, a step was sent to the new
    organisation, found nothing there and was taken as done with (XERO_OBJECT_MISSING), leaving
    the previous organisation with, say, an invoice renamed and its payment deleted but not voided,
    and nothing saying so. Each step still to do says where, and what the saga did there already."""
    now = now_us()
    for saga in uow.corrections.open_sagas(connection_id):
        if corrections_dom.left_in_previous_organisation(saga.steps):
            continue  # ended on an earlier move: its steps name the organisation that holds its objects
        done = "; ".join(s.detail for s in saga.steps if s.state == corrections_dom.StepState.DONE and s.detail)
        already = f" This correction already did there: {done}." if done else ""
        left = [
            (position, step)
            for position, step in enumerate(saga.steps, start=1)
            if step.actor == corrections_dom.Actor.XEROLINK and step.state != corrections_dom.StepState.DONE
        ]
        for position, step in left:
            uow.corrections.set_step(
                saga.row.correction_id,
                position,
                corrections_dom.StepState.FAILED,
                now,
                f"connection {connection_id} was connected to Xero organisation {tenant_id} before this step was "
                f"done in organisation {previous}: do it there by hand ({step.description}).{already} xerolink "
                "no longer calls that organisation through this connection; once it is done there, unlink the "
                "record (UnlinkLinks) to post it again in the new organisation",
                Reason.CORRECTION_LEFT_IN_PREVIOUS_ORGANISATION,
            )
        if left:
            uow.corrections.set_saga_state(saga.row.correction_id, corrections_dom.SagaState.FAILED.value, None, now)


@dataclass
class ConnectionKeeper(ConnectionTokens):
    """Connects, disconnects and remaps connections; keeps their tokens (ConnectionTokens)."""

    def connect(self, request: ConnectRequest) -> ConnectOutcome:
        with UnitOfWork(self.db, write=False) as uow:
            # A malformed id is refused by _validate_connect, never looked up.
            well_formed = CONNECTION_ID.fullmatch(request.connection_id) is not None
            existing = uow.connections.get_connection(request.connection_id) if well_formed else None
        _validate_connect(request, existing is None)
        base_url = (existing.xero_base_url if existing else request.xero_base_url or DEFAULT_XERO_API).rstrip("/")
        app_name = request.xero_app or (existing.xero_app if existing else "") or "default"
        try:
            app = self.apps.get(app_name)
        except AppNotConfigured as exc:
            raise failed_precondition(
                Reason.XERO_APP_NOT_CONFIGURED, str(exc), [PreconditionViolation("XERO_APP", app_name, str(exc))]
            ) from exc
        try:
            grant = self.identity.exchange_code(app, request.authorization_code, request.redirect_uri)
        except TokenRefused as exc:
            raise invalid_argument(
                Reason.AUTHORIZATION_CODE_REFUSED,
                f"Xero refused the authorisation code ({exc}); codes are single-use and expire within minutes: "
                "start the consent again",
                [FieldViolation("authorization_code", f"refused by Xero: {exc.error}")],
            ) from exc
        except Uncertain as exc:
            raise unavailable(Reason.XERO_UNREACHABLE, f"Xero's token endpoint did not answer ({exc}); retry") from exc
        tenant = self._choose_tenant(base_url, grant.access_token, request.xero_tenant_id)
        tenant_id = str(tenant.get("tenantId", "")).lower()
        organisation, accounts, rates = self._read_organisation(base_url, grant.access_token, tenant_id)
        chart = chart_from_accounts(accounts)
        country = str(organisation.get("CountryCode") or "").strip().upper()
        base_currency = str(organisation.get("BaseCurrency") or "")
        cid = request.connection_id
        tokens = self._token_values(cid, grant)

        def connected(current: ConnectionRow | None) -> tuple[mapper_pb2.MappingContext, list[allocation.Warning]]:
            """The context and warnings the connection gets, from the row as it is in the writing
            transaction (a RemapTaxTypes or RemapAccounts since it was first read is kept)."""
            context = mapper_pb2.MappingContext()
            if current is not None:
                context.ParseFromString(current.mapping_context)
                # A replacement organisation in another country: the old country's defaults do not apply.
                moved = tax_types.carry_untaxed(
                    untaxed_of(context), str(organisation_facts(current).get("country_code") or ""), country
                )
                for name, value in moved.items():
                    setattr(context.untaxed_line_tax_types, name, value)
            elif request.context is not None:
                context.CopyFrom(request.context)
            if not context.HasField("connected_at"):
                context.connected_at.CopyFrom(timestamp_of(now_us()))
            expected_currency = context.base_currency_code
            context.base_currency_code = base_currency or expected_currency
            del context.chart[:]
            context.chart.extend(chart)
            before = tax_rate_entries(context)
            empty_before = {s for s, t in settings_of(context).items() if not t}
            same = current is not None and current.xero_tenant_id == tenant_id
            set_tax_rates(context, rates, country, held_settings(current) if same and current else frozenset())
            # In another organisation a tax type may name another rate: its settings wait to be mapped
            # again. Those just filled with this country's defaults are this organisation's own.
            changed: list[tax_types.Changed] = []
            if current is not None and current.xero_tenant_id != tenant_id:
                settings = {s: t for s, t in settings_of(context).items() if s not in empty_before}
                changed = tax_types.changed(settings, before, tax_rate_entries(context))
            for change in changed:
                clear_setting(context, change.setting)
            warnings = allocation.organisation_warnings(
                bool(organisation.get("IsDemoCompany")),
                str(organisation.get("Class") or ""),
                base_currency,
                expected_currency,
            )
            warnings += [allocation.Warning("TAX_RATE_CHANGED", change.message()) for change in changed]
            if same and current is not None:
                # The same organisation again: why a setting still waits stays said.
                empty = [s for s, t in settings_of(context).items() if not t]
                warnings += [
                    allocation.Warning(str(w["code"]), str(w.get("message", "")))
                    for w in organisation_facts(current).get("warnings") or []
                    if w.get("code") == "TAX_RATE_CHANGED"
                    and any(str(w.get("message", "")).startswith(f"{s} was ") for s in empty)
                ]
            return context, warnings

        def values_for(current: ConnectionRow | None) -> tuple[dict[str, Any], list[allocation.Warning]]:
            context, warnings = connected(current)
            facts = {
                "name": str(organisation.get("Name") or tenant.get("tenantName") or ""),
                "organisation_id": str(organisation.get("OrganisationID") or ""),
                "demo_company": bool(organisation.get("IsDemoCompany")),
                "organisation_class": str(organisation.get("Class") or ""),
                "base_currency_code": base_currency,
                "chart_account_count": len(chart),
                "country_code": country,
                "tax_rate_count": len(context.tax_rates),
                "read_us": now_us(),
                "warnings": [{"code": w.code, "message": w.message} for w in warnings],
            }
            values = dict(tokens)
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
            return values, warnings + tax_warnings(context, country)

        # The row as the write found it ((version, sealed tokens, tenant) or None: absent), and
        # whether the write is run again after its COMMIT went unconfirmed.
        found: list[tuple[int, bytes | None, str] | None] = []
        settling: list[bool] = []

        def write(uow: UnitOfWork) -> tuple[ConnectionRow, str, list[allocation.Warning]]:
            require_tenant_free(uow.connections, tenant_id, cid)
            row = uow.connections.lock_connection(cid)
            state = None if row is None else (row.token_version, row.token_box, row.xero_tenant_id)
            if row is not None and row.token_box == tokens["token_box"]:
                # This request's own write, run again after its COMMIT went unconfirmed: it went
                # through (no other write carries these sealed tokens).
                before = found[0] if found else None
                return row, before[2] if before else "", []
            if settling and state != found[0]:
                # Neither this write nor the row it wrote over: another request changed the
                # connection since (connected another organisation, disconnected, refreshed).
                # Written now, this request's organisation and tokens would undo that change.
                raise connect_overtaken(cid)
            found[:] = [state]
            values, warned = values_for(row)
            previous = ""
            if row is None:
                row = ConnectionRow(connection_id=cid, xero_base_url=base_url, create_us=now_us(), **values)
                uow.connections.add_connection(row)
                return row, previous, warned
            previous = row.xero_tenant_id
            if previous != tenant_id:
                # Contacts found or created in the previous organisation do not exist in this one.
                uow.contacts.forget_contacts(cid)
                _give_up_unknown_outcomes(uow, cid, _named(row), tenant_id)
                _end_corrections_in_previous_organisation(uow, cid, _named(row), tenant_id)
                uow.outbox.move_outbox(cid, tenant_id)
            for name, value in values.items():
                setattr(row, name, value)
            row.token_version += 1
            uow.connections.save(row)
            return row, previous, warned

        try:
            _, previous, warned = run_in_transaction(self.db, write)
        except CommitMayHaveGoneThrough:
            # The code is spent at Xero, so the caller's retry would be refused: the write is run
            # again here, and finds itself stored, or the row as it left it and is made now.
            settling.append(True)
            try:
                _, previous, warned = run_until_confirmed(self.db, write)
            except CommitMayHaveGoneThrough as exc:
                raise connect_overtaken(cid, confirmed=False) from exc
        for w in warned:
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
            raise unavailable(
                Reason.XERO_UNREACHABLE, f"could not list Xero's tenant connections ({exc}); retry"
            ) from exc
        if wanted:
            for tenant in tenants:
                if str(tenant.get("tenantId", "")).lower() == wanted.lower():
                    return tenant
            raise failed_precondition(
                Reason.TENANT_NOT_CONNECTED,
                f"the consent did not connect organisation {wanted}; connected: {tenant_list(tenants)}. Choose one "
                "of those, or consent again selecting that organisation",
                [PreconditionViolation(Reason.TENANT_NOT_CONNECTED, wanted, "not in Xero's /connections for this app")],
            )
        if len(tenants) == 1:
            return tenants[0]
        if not tenants:
            raise failed_precondition(
                Reason.NO_TENANT_CONNECTED,
                "the consent connected no Xero organisation; consent again and select one",
                [PreconditionViolation(Reason.NO_TENANT_CONNECTED, "connections", "empty")],
            )
        raise invalid_argument(
            Reason.TENANT_AMBIGUOUS,
            f"the app is connected to several organisations: {tenant_list(tenants)}; name one in xero_tenant_id",
            [FieldViolation("xero_tenant_id", "required when Xero lists more than one organisation")],
        )

    def _read_organisation(
        self, base_url: str, access_token: str, tenant_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        try:
            return (
                self.identity.organisation(base_url, access_token, tenant_id),
                self.identity.accounts(base_url, access_token, tenant_id),
                self.identity.tax_rates(base_url, access_token, tenant_id),
            )
        except (Uncertain, XeroRefused) as exc:
            raise unavailable(
                Reason.XERO_UNREACHABLE, f"could not read the organisation from Xero ({exc}); retry"
            ) from exc

    # -- disconnect ----------------------------------------------------------------------------------
    def disconnect(self, connection_id: str) -> ConnectionRow:
        row = self.get(connection_id)
        if row.state == ConnectionState.DISCONNECTED:
            return row
        note = ""
        sharing = self._sharing_the_organisation(row)
        if sharing:
            # Xero's connection is the app's access to the organisation, which the other holds too
            # (two of them are left only by revision 0011): removing it would stop that one posting.
            note = (
                f"connection {sharing[0]!r} is still connected to this Xero organisation, so the app's access to it "
                "was left in place at Xero"
            )
        elif row.token_box is not None and row.xero_connection_id:
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
            current = uow.connections.get_connection(connection_id)
            assert current is not None
            current.state = ConnectionState.DISCONNECTED
            current.token_box = None
            current.token_key_id = ""
            current.access_expires_us = 0
            current.token_version += 1
            current.refresh_holder = ""
            current.refresh_until_us = 0
            current.last_error = note
            uow.connections.save(current)

        run_in_transaction(self.db, write)
        with self._lock:
            self._cache.pop(connection_id, None)
        return self.get(connection_id)

    def _sharing_the_organisation(self, row: ConnectionRow) -> list[str]:
        """The other connections to the row's Xero organisation that are not disconnected."""
        if not row.xero_tenant_id:
            return []
        with UnitOfWork(self.db, write=False) as uow:
            return live_connections_of_tenant(uow.connections, row.xero_tenant_id, row.connection_id)

    # -- allocation ----------------------------------------------------------------------------------
    def discrepancies(
        self, connection_id: str, refresh_chart: bool = False
    ) -> tuple[ConnectionRow, list[allocation.Discrepancy]]:
        row = self.get(connection_id)
        if refresh_chart:
            creds = self.credentials(row)
            try:
                accounts = self.identity.accounts(creds.base_url, creds.access_token, creds.tenant_id)
                # A rate archived or added in Xero since the connection was made changes what the
                # mapper may post, as an account does.
                rates = self.identity.tax_rates(creds.base_url, creds.access_token, creds.tenant_id)
            except (Uncertain, XeroRefused) as exc:
                raise unavailable(
                    Reason.XERO_UNREACHABLE, f"could not read the chart from Xero ({exc}); retry"
                ) from exc
            chart = chart_from_accounts(accounts)

            def write(uow: UnitOfWork) -> None:
                current = uow.connections.lock_connection(connection_id)
                assert current is not None
                if current.xero_tenant_id != row.xero_tenant_id:
                    # Read from the organisation the connection had before a replacement came in.
                    raise unavailable(
                        Reason.XERO_UNREACHABLE,
                        "the connection moved to another Xero organisation while its chart was read; retry",
                    )
                context = context_of(current)
                del context.chart[:]
                context.chart.extend(chart)
                country = str(organisation_facts(current).get("country_code") or "")
                set_tax_rates(context, rates, country, held_settings(current))
                current.mapping_context = context.SerializeToString()
                uow.connections.save(current)

            run_in_transaction(self.db, write)
            row = self.get(connection_id)
        return row, allocation_discrepancies(context_of(row))

    def remap(
        self, connection_id: str, changes: Mapping[str, str], validate_only: bool
    ) -> tuple[dict[str, str], list[allocation.Discrepancy]]:
        if not changes:
            raise invalid_argument(
                Reason.NOTHING_TO_REMAP,
                "name at least one allocation function and its new account code",
                [FieldViolation("account_allocation", "required: function -> Xero account code")],
            )
        if len(changes) > len(allocation.FUNCTIONS):
            raise invalid_argument(
                Reason.ALLOCATION_INVALID,
                f"{len(changes)} functions named; there are {len(allocation.FUNCTIONS)} allocation functions",
                [FieldViolation("account_allocation", f"at most {len(allocation.FUNCTIONS)} functions, each once")],
            )
        row = self.get(connection_id)
        context = context_of(row)
        _check_remap(changes, context)
        merged = dict(context.account_allocation)
        merged.update(changes)
        if validate_only:
            return merged, allocation.discrepancies(merged, chart_entries(context))

        def write(uow: UnitOfWork) -> ConnectionRow:
            current = uow.connections.lock_connection(connection_id)
            assert current is not None
            fresh = context_of(current)
            _check_remap(changes, fresh)  # against the chart as it is now (a refresh may have come in)
            for function, code in changes.items():
                fresh.account_allocation[function] = code
            current.mapping_context = fresh.SerializeToString()
            uow.connections.save(current)
            return current

        saved = run_in_transaction(self.db, write)
        context = context_of(saved)
        return dict(context.account_allocation), allocation_discrepancies(context)

    # -- tax types -----------------------------------------------------------------------------------
    def remap_tax_types(self, change: TaxRemap) -> tuple[mapper_pb2.MappingContext, list[tax_types.Problem]]:
        """Sets the tax settings `change` names, each validated against the organisation's tax rates;
        answers the context after the change and what is still wrong with it."""
        named = change.settings()
        if not named:
            raise invalid_argument(
                Reason.NOTHING_TO_REMAP,
                "name at least one tax setting and its new tax type",
                [FieldViolation("tax_code_map", "a tax code -> Xero TaxType, or an untaxed_line_tax_types field")],
            )
        violations = [
            FieldViolation(setting, f"an Actionstep tax code of at most {tax_types.MAX_NAME} printable characters")
            for setting, code in change.codes()
            if not code or len(code) > tax_types.MAX_NAME or not code.isprintable()
        ]
        if len(named) > tax_types.MAX_CHANGES:
            violations.append(FieldViolation("tax_code_map", f"at most {tax_types.MAX_CHANGES} settings in one re-map"))
        if violations:
            raise self._tax_types_invalid(violations)
        row = self.get(connection_id := change.connection_id)
        if change.validate_only:
            return self._remapped(row, change, named)

        def write(uow: UnitOfWork) -> tuple[mapper_pb2.MappingContext, list[tax_types.Problem]]:
            # Checked against the rates of the row as it is now (a replacement organisation may have
            # come in since it was first read).
            current = uow.connections.lock_connection(connection_id)
            assert current is not None
            context, found = self._remapped(current, change, named)
            current.mapping_context = context.SerializeToString()
            # A setting mapped again is no longer one whose rate changed with the organisation.
            facts = organisation_facts(current)
            facts["warnings"] = [
                w
                for w in facts.get("warnings") or []
                if not (
                    w.get("code") == "TAX_RATE_CHANGED"
                    and any(str(w.get("message", "")).startswith(f"{setting} was ") for setting in named)
                )
            ]
            current.organisation = json.dumps(facts)
            uow.connections.save(current)
            return context, found

        return run_in_transaction(self.db, write)

    def _remapped(
        self, row: ConnectionRow, change: TaxRemap, named: dict[str, str]
    ) -> tuple[mapper_pb2.MappingContext, list[tax_types.Problem]]:
        context = context_of(row)
        found = tax_types.remap_problems(named, tax_rate_entries(context))
        if found:
            raise self._tax_types_invalid([FieldViolation(s, why) for s, why in sorted(found.items())])
        change.apply(context)
        return context, tax_problems(context, str(organisation_facts(row).get("country_code") or ""))

    @staticmethod
    def _tax_types_invalid(violations: list[FieldViolation]) -> XerolinkError:
        return invalid_argument(
            Reason.TAX_TYPES_INVALID,
            "the tax types cannot be changed; fix the settings listed (use active tax rates of the organisation)",
            violations,
        )


def _check_remap(changes: Mapping[str, str], context: mapper_pb2.MappingContext) -> None:
    problems = allocation.remap_problems(changes, chart_entries(context))
    if problems:
        raise invalid_argument(
            Reason.ALLOCATION_INVALID,
            "the allocation cannot be changed; fix the functions listed (use active accounts of the chart)",
            [FieldViolation(f"account_allocation[{f}]", why) for f, why in sorted(problems.items())],
        )


def connect_overtaken(connection_id: str, confirmed: bool = True) -> XerolinkError:
    """The answer to a connect whose write went unconfirmed and could not be settled: the
    authorisation code is spent, so sending the request again would be refused."""
    why = (
        "another request changed the connection since, so it was not written again"
        if confirmed
        else "the registry did not confirm it again"
    )
    return XerolinkError(
        ErrorCode.ABORTED,
        Reason.REGISTRY_COMMIT_UNCONFIRMED,
        f"the registry did not confirm the write of connection {connection_id!r}, and {why}. GetConnection "
        "shows the connection; if it is not the organisation chosen, connect again with a new authorisation code "
        "(this one is spent)",
    )


def _validate_connect(request: ConnectRequest, new: bool) -> None:
    violations: list[FieldViolation] = []
    if not CONNECTION_ID.fullmatch(request.connection_id):
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
            Reason.INVALID_CONNECTION, "the organisation cannot be connected; fix the fields listed", violations
        )
