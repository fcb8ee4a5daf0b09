"""Transport security and caller authentication shared by both servers.

TLS: XEROLINK_TLS_CERT + XEROLINK_TLS_KEY (PEM files) serve TLS; adding XEROLINK_TLS_CLIENT_CA
requires and verifies client certificates (mutual TLS).

Callers: XEROLINK_CALLERS_FILE names a JSON file listing who may call and for which
connections (tenants):

  {"callers": [
     {"name": "billing-service", "token_sha256": "<hex sha256 of its bearer token>", "connections": ["firm-1"]},
     {"name": "poster", "mtls_subject": "poster.xerolink", "connections": ["*"]}
  ]}

A caller authenticates with `authorization: Bearer <token>` metadata or with its client
certificate's subject common name (mutual TLS). Only a hash of each token is configured, so the
file holds no secret. Without a callers file authentication is off (local development) and the
server logs that it is; it then listens on loopback only unless XEROLINK_ALLOW_UNAUTHENTICATED=1
(listening.py). Health checking and reflection stay open for probes."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.grpc_errors import to_status
from xerolink_common.reasons import Reason

log = logging.getLogger(__name__)

OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.")
ANY_CONNECTION = "*"


@dataclass(frozen=True)
class Caller:
    name: str
    connections: frozenset[str] = field(default_factory=frozenset)

    def may_use(self, connection_id: str) -> bool:
        return ANY_CONNECTION in self.connections or connection_id in self.connections


# Authentication off: every caller is the local developer with every connection.
LOCAL_DEVELOPER = Caller("local-developer", frozenset({ANY_CONNECTION}))
_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("xerolink_caller", default=LOCAL_DEVELOPER)


def current_caller() -> Caller:
    """The authenticated caller of the RPC being served (servicers authorise with it)."""
    return _current.get()


def require_connection(connection_id: str) -> None:
    """Raises PERMISSION_DENIED unless the current caller may use this connection. The message
    does not say whether the connection exists: one tenant learns nothing about another."""
    caller = current_caller()
    if not caller.may_use(connection_id):
        raise XerolinkError(
            ErrorCode.PERMISSION_DENIED,
            Reason.CONNECTION_NOT_PERMITTED,
            f"caller {caller.name!r} may not use connection {connection_id!r}; ask the operator to add it "
            "to the caller's connections",
            metadata={"caller": caller.name, "connection_id": connection_id},
        )


@dataclass(frozen=True)
class CallerRegistry:
    by_token_hash: dict[str, Caller]
    by_subject: dict[str, Caller]

    @classmethod
    def from_file(cls, path: Path) -> CallerRegistry:
        try:
            raw = json.loads(path.read_text())
            entries = raw["callers"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: not a callers file ({exc}); see the operations docs") from exc
        by_token: dict[str, Caller] = {}
        by_subject: dict[str, Caller] = {}
        for entry in entries:
            caller = Caller(str(entry["name"]), frozenset(str(c) for c in entry.get("connections", [])))
            if entry.get("token_sha256"):
                by_token[str(entry["token_sha256"]).lower()] = caller
            if entry.get("mtls_subject"):
                by_subject[str(entry["mtls_subject"])] = caller
            if not entry.get("token_sha256") and not entry.get("mtls_subject"):
                raise SystemExit(f"{path}: caller {caller.name!r} has neither token_sha256 nor mtls_subject")
        return cls(by_token, by_subject)

    def authenticate(self, metadata: Iterable[tuple[str, Any]], auth_context: dict[str, list[bytes]]) -> Caller | None:
        for subject in auth_context.get("x509_common_name", []):
            caller = self.by_subject.get(subject.decode())
            if caller is not None:
                return caller
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                digest = hashlib.sha256(value.removeprefix("Bearer ").encode()).hexdigest()
                for known, caller in self.by_token_hash.items():
                    if hmac.compare_digest(known, digest):
                        return caller
        return None


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every call except health and reflection, and makes the caller available to
    servicers through current_caller()."""

    def __init__(self, registry: CallerRegistry, allowed_callers: frozenset[str] | None = None) -> None:
        self._registry = registry
        # The mapper serves only the poster and the callers configured for it.
        self._allowed = allowed_callers

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(OPEN_SERVICES):
            return handler
        return _wrap(handler, self._authenticate)

    def _authenticate(self, context: grpc.ServicerContext) -> Caller:
        caller = self._registry.authenticate(context.invocation_metadata(), context.auth_context())
        if caller is None:
            # abort_with_status raises; the explicit raise below only tells the type checker.
            context.abort_with_status(
                to_status(
                    XerolinkError(
                        ErrorCode.UNAUTHENTICATED,
                        Reason.CALLER_UNKNOWN,
                        "no known caller: send 'authorization: Bearer <token>' or a client certificate the "
                        "operator has registered",
                    )
                )
            )
            raise RuntimeError("unreachable: abort_with_status raises")
        if self._allowed is not None and caller.name not in self._allowed:
            context.abort_with_status(
                to_status(
                    XerolinkError(
                        ErrorCode.PERMISSION_DENIED,
                        Reason.CALLER_NOT_ALLOWED,
                        f"caller {caller.name!r} may not call this service",
                    )
                )
            )
        return caller


def _wrap(handler: Any, authenticate: Callable[[grpc.ServicerContext], Caller]) -> Any:
    def guard(behaviour: Callable[..., Any], streaming_response: bool) -> Callable[..., Any]:
        if streaming_response:

            def stream(request: Any, context: grpc.ServicerContext) -> Any:
                token = _current.set(authenticate(context))
                try:
                    yield from behaviour(request, context)
                finally:
                    _current.reset(token)

            return stream

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            token = _current.set(authenticate(context))
            try:
                return behaviour(request, context)
            finally:
                _current.reset(token)

        return unary

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            guard(handler.unary_unary, False), handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            guard(handler.unary_stream, True), handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            guard(handler.stream_unary, False), handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        guard(handler.stream_stream, True), handler.request_deserializer, handler.response_serializer
    )


@dataclass(frozen=True)
class ServerSecurity:
    credentials: grpc.ServerCredentials | None
    interceptors: tuple[grpc.ServerInterceptor, ...]
    # Callers are authenticated (a callers file): the server may listen beyond loopback.
    authenticated: bool = False


def server_security_from_env(service: str, allowed_callers_env: str | None = None) -> ServerSecurity:
    """TLS credentials and the authentication interceptor as the environment configures them."""
    credentials = None
    cert, key = os.environ.get("XEROLINK_TLS_CERT"), os.environ.get("XEROLINK_TLS_KEY")
    if cert and key:
        client_ca = os.environ.get("XEROLINK_TLS_CLIENT_CA")
        credentials = grpc.ssl_server_credentials(
            [(Path(key).read_bytes(), Path(cert).read_bytes())],
            root_certificates=Path(client_ca).read_bytes() if client_ca else None,
            require_client_auth=bool(client_ca),
        )
    elif cert or key:
        raise SystemExit("set both XEROLINK_TLS_CERT and XEROLINK_TLS_KEY, or neither")
    callers_file = os.environ.get("XEROLINK_CALLERS_FILE")
    if not callers_file:
        log.warning("%s: caller authentication is OFF (XEROLINK_CALLERS_FILE unset); local development only", service)
        return ServerSecurity(credentials, ())
    allowed = None
    if allowed_callers_env and os.environ.get(allowed_callers_env):
        allowed = frozenset(n.strip() for n in os.environ[allowed_callers_env].split(",") if n.strip())
    registry = CallerRegistry.from_file(Path(callers_file))
    return ServerSecurity(credentials, (AuthInterceptor(registry, allowed),), authenticated=True)


class ClientSettingsError(ValueError):
    """The client settings are incomplete or name a file that cannot be read."""


def client_channel(target: str) -> grpc.Channel:
    """A channel to another xerolink service as the environment configures the client side:
    XEROLINK_TLS_CA (server CA), XEROLINK_TLS_CLIENT_CERT/KEY (mutual TLS) and
    XEROLINK_CALLER_TOKEN (bearer token), each optional. A client certificate without the CA, or
    half of one, is refused rather than silently dropped (it would mean plaintext)."""
    ca = os.environ.get("XEROLINK_TLS_CA")
    token = os.environ.get("XEROLINK_CALLER_TOKEN")
    cert, key = os.environ.get("XEROLINK_TLS_CLIENT_CERT"), os.environ.get("XEROLINK_TLS_CLIENT_KEY")
    if bool(cert) != bool(key):
        raise ClientSettingsError("set both XEROLINK_TLS_CLIENT_CERT and XEROLINK_TLS_CLIENT_KEY, or neither")
    if cert and not ca:
        raise ClientSettingsError("a client certificate (XEROLINK_TLS_CLIENT_CERT) needs XEROLINK_TLS_CA too")
    if not ca:
        channel = grpc.insecure_channel(target)
        if token:
            return grpc.intercept_channel(channel, _BearerToken(token))
        return channel
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read("XEROLINK_TLS_CA", ca),
        private_key=_read("XEROLINK_TLS_CLIENT_KEY", key) if key else None,
        certificate_chain=_read("XEROLINK_TLS_CLIENT_CERT", cert) if cert else None,
    )
    if token:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(target, credentials)


def _read(variable: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ClientSettingsError(f"{variable}={path}: cannot be read ({exc.strerror})") from exc


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the bearer token on a plaintext channel (loopback or inside a mesh that encrypts)."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        metadata = [*(details.metadata or []), self._metadata]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any
