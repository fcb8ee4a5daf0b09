"""The request pipeline in front of the Accounting API, in Xero's order: authentication, tenant,
rate limits, faults, idempotency, then the resource itself under the organisation's lock."""

from __future__ import annotations

import base64
import binascii
import time
import urllib.parse
from typing import Any

from xero_emulator import admin
from xero_emulator.auth import OAuthError
from xero_emulator.domain.errors import BadRequest, NotFound, ValidationFailure
from xero_emulator.faults import FaultPlan
from xero_emulator.idempotency import MAX_KEY_LENGTH, fingerprint
from xero_emulator.jsonio import dumps
from xero_emulator.messages import Request, Response, error_400, problem, validation_exception
from xero_emulator.openapi.spec import openapi_document
from xero_emulator.request_log import ReceivedRequest
from xero_emulator.state import EmulatorState
from xero_emulator.xero_api import routing

API_PREFIX = "/api.xro/2.0/"
WRITE_METHODS = ("PUT", "POST", "DELETE")
# Xero answers 404 "The resource you're looking for cannot be found" to a request whose whole URL
# is longer than 2,091 characters (XeroAPI/Xero-NetStandard#471: GET Contacts?IDs=...; 53 ids in
# XeroAPI/xero-node#404). Measured as the same request to Xero's host would be.
XERO_ORIGIN = "https://api.xero.com"
MAX_URL_LENGTH = 2091


GARBLED = (
    b'{"Status":"OK","Invoices":["garbled"],"Payments":["garbled"],"BankTransactions":["garbled"],'
    b'"CreditNotes":["garbled"],"ManualJournals":["garbled"],"BankTransfers":["garbled"],"Contacts":["garbled"]}'
)


class Gateway:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.lower().startswith(API_PREFIX):
            return self._accounting(request, [p for p in path[len(API_PREFIX) :].split("/") if p])
        if path == "/connect/token":
            return self._token(request)
        if path.lower().rstrip("/") == "/connections" or path.lower().startswith("/connections/"):
            return self._connections(request)
        if path in ("/openapi.json", "/emulator/openapi.json"):
            if request.method != "GET":
                return Response(405, b"", {"Allow": "GET"})
            return Response.json(200, openapi_document())
        if path.startswith("/emulator/"):
            return admin.handle(self.state, request)
        return problem(404, "NotFound", "The resource you're looking for cannot be found")

    # -- Accounting API -----------------------------------------------------------------------
    def _accounting(self, request: Request, parts: list[str]) -> Response:
        response = self._accounting_answer(request, parts)
        params = tuple(
            (name, value) for name, value in urllib.parse.parse_qsl(request.query_string, keep_blank_values=True)
        )
        tenant_id = (request.header("xero-tenant-id") or "").strip().lower()
        self.state.requests.record(ReceivedRequest(request.method, request.path, params, tenant_id, response.status))
        return response

    def _accounting_answer(self, request: Request, parts: list[str]) -> Response:
        allowed = routing.allowed_methods(parts)
        if allowed is None or len(XERO_ORIGIN) + len(request.target) > MAX_URL_LENGTH:
            return problem(404, "NotFound", "The resource you're looking for cannot be found")
        if request.method not in allowed:
            return Response(405, b"", {"Allow": ", ".join(allowed)})
        app = self.state.identity.authenticate(request.header("Authorization"))
        if app is None:
            return problem(
                401, "Unauthorized", "AuthenticationUnsuccessful", {"WWW-Authenticate": 'Bearer realm="xero"'}
            )
        tenant_id = (request.header("xero-tenant-id") or "").strip().lower()
        org = self.state.organisations.get(tenant_id)
        if org is None or not app.connected(tenant_id):
            return problem(403, "Forbidden", "AuthorizationUnsuccessful")
        plan = self.state.faults.plan(request.method, request.path, tenant_id)
        if plan.rate_limit is not None:
            rule = plan.rate_limit
            return problem(
                429,
                "Too Many Requests",
                f"Rate limit exceeded ({rule.problem})",
                {"Retry-After": str(rule.retry_after), "X-Rate-Limit-Problem": rule.problem},
            )
        decision = self.state.limiter.acquire(app.client_id, tenant_id)
        if not decision.allowed:
            return problem(429, "Too Many Requests", f"Rate limit exceeded ({decision.problem})", decision.headers())
        try:
            if plan.latency:  # a slow call holds its concurrency slot, as at Xero
                time.sleep(plan.latency)
            response = self._idempotent(request, tenant_id, lambda: self._serve(org, request, parts, plan))
        finally:
            self.state.limiter.release(app.client_id, tenant_id)
        if plan.garble_after_commit and request.method in WRITE_METHODS and response.status == 200:
            # Committed (and stored for idempotent replay as it was), but this answer arrives with
            # every element mangled into a bare string.
            response = Response(200, GARBLED, {"Content-Type": "application/json"})
        response.headers.update(decision.headers())
        return response

    def _serve(self, org: Any, request: Request, parts: list[str], plan: FaultPlan) -> Response:
        if plan.error is not None:
            status = plan.error.status
            return problem(
                status,
                "Internal Server Error" if status == 500 else "Service Unavailable",
                "Injected fault: nothing was changed",
            )
        try:
            with org.lock:
                response = routing.handle(org, request, parts, self.state.config.provider_name)
        except NotFound:
            response = problem(404, "NotFound", "The resource you're looking for cannot be found")
        except BadRequest as exc:
            response = error_400(exc.message, exc.kind, exc.number)
        except ValidationFailure as exc:
            response = validation_exception([{"ValidationErrors": [{"Message": m} for m in exc.messages]}])
        if plan.drop_after_commit and request.method in WRITE_METHODS:
            response.drop_connection = True
        return response

    def _idempotent(self, request: Request, tenant_id: str, serve: Any) -> Response:
        key = request.header("Idempotency-Key")
        if key is None or request.method not in ("PUT", "POST"):
            response: Response = serve()
            return response
        if not key or len(key) > MAX_KEY_LENGTH:
            return error_400(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
        fp = fingerprint(request.method, request.path, request.query_string, request.body)
        with self.state.idempotency.key_lock(tenant_id, key):
            stored = self.state.idempotency.get(tenant_id, key)
            if stored is not None:
                if stored.fingerprint != fp:
                    return error_400(
                        "The Idempotency-Key was already used for a different request. Use a new key for new content.",
                        "IdempotencyException",
                        400,
                    )
                return Response(stored.status, stored.body, dict(stored.headers))
            response = serve()
            if response.status < 500:
                # Xero replays errors too; a 5xx (nothing done) stays retryable.
                self.state.idempotency.put(tenant_id, key, fp, response.status, response.headers, response.body)
            return response

    # -- identity -------------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, b"", {"Allow": "POST"})
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(request.body.decode("utf-8", "replace")).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.header("Authorization") or ""
        if basic.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error(OAuthError("invalid_client"))
        plan = self.state.faults.plan(request.method, request.path, None, identity=True)
        if plan.latency:
            time.sleep(plan.latency)
        if plan.error is not None:
            return problem(plan.error.status, "Service Unavailable", "Injected fault: nothing was changed")
        try:
            app = self.state.identity.client(client_id, secret)
            grant = form.get("grant_type")
            if grant == "authorization_code":
                tokens = self.state.identity.exchange_code(app, form.get("code", ""))
            elif grant == "refresh_token":
                tokens = self.state.identity.refresh(app, form.get("refresh_token", ""))
            else:
                raise OAuthError("unsupported_grant_type")
        except OAuthError as exc:
            return _oauth_error(exc)
        response = Response(200, dumps(tokens), {"Content-Type": "application/json", "Cache-Control": "no-store"})
        # Tokens issued (a refresh token rotated) but the answer never arrives: the client must
        # recover with the previous refresh token during the grace period.
        response.drop_connection = plan.drop_after_commit
        return response

    def _connections(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        allowed = ("GET",) if len(parts) == 1 else ("DELETE",) if len(parts) == 2 else None
        if allowed is None:
            return problem(404, "NotFound", "The resource you're looking for cannot be found")
        if request.method not in allowed:
            return Response(405, b"", {"Allow": ", ".join(allowed)})
        app = self.state.identity.authenticate(request.header("Authorization"))
        if app is None:
            return problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        if len(parts) == 1:
            return Response(200, dumps(list(app.connections.values())), {"Content-Type": "application/json"})
        if not self.state.identity.disconnect(app, parts[1].lower()):
            return problem(404, "NotFound", "The connection was not found")
        return Response(204)


def _oauth_error(exc: OAuthError) -> Response:
    body: dict[str, str] = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    return Response(exc.status, dumps(body), {"Content-Type": "application/json"})
