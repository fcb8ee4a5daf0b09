"""The emulator's own admin API under /emulator/ (not part of Xero): organisations, lock dates,
faults, ledger, object listings, hand edits, webhooks and reset — for out-of-process tests and the
demo. Nothing here counts against the API's rate limits or appears in its request record."""

from __future__ import annotations

import re
from typing import Any

from xero_emulator.domain.errors import BadRequest, NotFound, ValidationFailure
from xero_emulator.domain.ledger import ledger_view
from xero_emulator.domain.organisation import RESOURCES
from xero_emulator.faults import FaultRule
from xero_emulator.jsonio import JsonError, loads, parse_date
from xero_emulator.messages import Request, Response, render
from xero_emulator.state import EmulatorState

_ORG = re.compile(r"^/emulator/organisations/(?P<tenant>[^/]+)(?P<rest>/.*)?$")


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"error": message})


def _body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        body = loads(request.body)
    except JsonError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def handle(state: EmulatorState, request: Request) -> Response:
    try:
        return _route(state, request)
    except NotFound as exc:
        return _error(404, str(exc))
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    except BadRequest as exc:
        return _error(400, exc.message)
    except ValidationFailure as exc:  # a hand edit Xero's rules refuse
        return Response.json(400, {"error": " ".join(exc.messages), "messages": exc.messages})


def _route(state: EmulatorState, request: Request) -> Response:
    method, path = request.method, request.path.rstrip("/")
    if path == "/emulator/health":
        return Response.json(200, {"status": "ok"})
    if path == "/emulator/reset" and method == "POST":
        state.reset()
        return Response.json(200, {"reset": True})
    if path == "/emulator/faults":
        return _faults(state, request)
    if path == "/emulator/idempotency":
        return _idempotency(state, request)
    if path == "/emulator/requests":
        return _requests(state, request)
    if path == "/emulator/webhooks":
        return _webhooks(state, request)
    if path == "/emulator/webhooks/intent-to-receive":
        if method != "POST":
            return Response(405, b"", {"Allow": "POST"})
        return Response.json(200, state.webhooks.intent_to_receive())
    if path == "/emulator/organisations":
        if method == "POST":
            body = _body(request)
            created = state.create_organisation(
                str(body.get("name") or "Demo Law Firm Pty Ltd"),
                region=str(body.get("region") or "AU"),
                is_demo=bool(body.get("is_demo", False)),
                org_class=body.get("class"),
                client_id=body.get("client_id"),
                without_accounts=tuple(str(c) for c in body.get("without_accounts") or ()),
            )
            return Response.json(201, created)
        if method == "GET":
            return Response.json(
                200,
                {
                    "organisations": [
                        {"tenant_id": t, "name": o.name, "region": o.region.key} for t, o in state.organisations.items()
                    ]
                },
            )
    match = _ORG.match(path)
    if match:
        org = state.organisation(match.group("tenant"))
        rest = match.group("rest") or ""
        if rest == "/ledger" and method == "GET":
            return Response.json(200, state.ledger(org.tenant_id))
        profit = re.match(r"^/tracking/(?P<category>[^/]+)/profit$", rest)
        if profit and method == "GET":
            figures = state.profit_by_option(
                org.tenant_id, profit.group("category"), request.param("fromDate"), request.param("toDate")
            )
            return Response.json(200, figures)
        edit = re.match(r"^/hand-edits/(?P<resource>[^/]+)/(?P<id>[^/]+)$", rest)
        if edit and method == "POST":
            changed = state.hand_edit(org.tenant_id, edit.group("resource"), edit.group("id"), _body(request))
            return Response.json(200, changed)
        if rest == "/bank-feed-match" and method == "POST":
            return Response.json(200, state.bank_feed_match(org.tenant_id, _body(request)))
        if rest == "/settings" and method == "POST":
            body = _body(request)
            with org.lock:
                for field, attr in (
                    ("PeriodLockDate", "period_lock_date"),
                    ("EndOfYearLockDate", "end_of_year_lock_date"),
                ):
                    if field in body:
                        setattr(org, attr, parse_date(body[field]) if body[field] else None)
                if "IsDemoCompany" in body:
                    org.is_demo = bool(body["IsDemoCompany"])
                if "Class" in body:
                    org.org_class = str(body["Class"])
                return Response.json(200, org.organisation_object())
        if rest == "/accounts" and method == "POST":
            body = _body(request)
            with org.lock:
                account = org.account_by_code(str(body.get("Code")))
                if account is None:
                    raise NotFound("Account", str(body.get("Code")))
                if body.get("Status") not in ("ACTIVE", "ARCHIVED"):
                    raise ValueError("Status must be ACTIVE or ARCHIVED")
                account["Status"] = body["Status"]
                return Response.json(200, account)
        if rest.startswith("/objects/") and method == "GET":
            resource = rest[len("/objects/") :]
            if resource not in RESOURCES:
                raise ValueError(f"resource must be one of {', '.join(RESOURCES)}")
            with org.lock:
                return Response.json(200, {resource: render(list(org.objects[resource].values()))})
        if rest == "" and method == "GET":
            with org.lock:
                return Response.json(200, {"organisation": org.organisation_object(), "ledger": ledger_view(org)})
    if path.startswith("/emulator/apps/") and path.endswith("/authorization-code") and method == "POST":
        app = state.identity.apps.get(path.split("/")[3])
        if app is None:
            raise NotFound("App", path.split("/")[3])
        return Response.json(200, {"authorization_code": state.identity.issue_code(app)})
    return _error(404, f"no admin route {method} {path}; see docs/emulator.md")


def _faults(state: EmulatorState, request: Request) -> Response:
    if request.method == "GET":
        return Response.json(200, {"faults": [r.to_json() for r in state.faults.rules()]})
    if request.method == "DELETE":
        state.faults.clear()
        return Response.json(200, {"faults": []})
    body = _body(request)
    if request.method == "PUT":
        rules = body.get("faults")
        if not isinstance(rules, list):
            raise ValueError('PUT /emulator/faults takes {"faults": [...]}')
        state.faults.set([FaultRule.from_json(r) for r in rules])
    elif request.method == "POST":
        state.faults.add(FaultRule.from_json(body))
    else:
        return Response(405, b"", {"Allow": "GET, PUT, POST, DELETE"})
    return Response.json(200, {"faults": [r.to_json() for r in state.faults.rules()]})


def _webhooks(state: EmulatorState, request: Request) -> Response:
    """Xero's webhook subscription: PUT {"url", "key"} turns it on, DELETE off; GET shows it
    (never the key) with delivery counters and the latest deliveries."""
    if request.method == "PUT":
        body = _body(request)
        state.webhooks.configure(body.get("url"), body.get("key"))  # type: ignore[arg-type]
    elif request.method == "DELETE":
        state.webhooks.clear()
    elif request.method != "GET":
        return Response(405, b"", {"Allow": "GET, PUT, DELETE"})
    return Response.json(200, state.webhooks.view())


def _idempotency(state: EmulatorState, request: Request) -> Response:
    """Xero keeps Idempotency-Keys for minutes; this lets a test jump past that window."""
    store = state.idempotency
    if request.method == "POST":
        body = _body(request)
        forgotten = store.forget_all() if body.get("forget") is True else 0
        if "ttl_minutes" in body:
            minutes = body["ttl_minutes"]
            if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 0:
                raise ValueError("ttl_minutes must be a number of emulated minutes, 0 or more")
            store.set_ttl(state.config.minutes(float(minutes)))
        return Response.json(200, _idempotency_view(state) | {"forgotten": forgotten})
    if request.method == "GET":
        return Response.json(200, _idempotency_view(state))
    return Response(405, b"", {"Allow": "GET, POST"})


def _idempotency_view(state: EmulatorState) -> dict[str, Any]:
    ttl_minutes = state.idempotency.ttl_seconds / state.config.minute_seconds
    return {"ttl_minutes": ttl_minutes, "keys": state.idempotency.count()}


def _requests(state: EmulatorState, request: Request) -> Response:
    if request.method == "GET":
        tenant = request.param("tenant_id")
        tenant = tenant.strip().lower() if tenant else None
        return Response.json(200, {"requests": [e.to_json() for e in state.requests.entries(tenant)]})
    if request.method == "DELETE":
        state.requests.clear()
        return Response.json(200, {"requests": []})
    return Response(405, b"", {"Allow": "GET, DELETE"})
