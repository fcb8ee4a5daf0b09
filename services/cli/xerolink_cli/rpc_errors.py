"""How the CLI reads a service's error: which errors end the whole command, and the account of
one that it prints (status code, reason, message, then each violation on its own line)."""

from __future__ import annotations

import grpc
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason

# The service did not answer (exit 3).
NOT_ANSWERED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# The caller itself was refused: every further request of the command would be too (exit 5).
CALLER_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

CREDENTIALS_HINT = (
    "the CLI authenticates with XEROLINK_CALLER_TOKEN (a bearer token) or the client certificate in "
    "XEROLINK_TLS_CLIENT_CERT/XEROLINK_TLS_CLIENT_KEY; the service's callers file must list it"
)


def status_code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = exc.code() if hasattr(exc, "code") else None
    return code if isinstance(code, grpc.StatusCode) else None


def account(exc: grpc.RpcError) -> list[str]:
    """The error as plain lines: `CODE REASON: message`, then `  field: description` per
    violation, then a hint when the caller was not authenticated."""
    code = status_code(exc)
    if code is None:
        return [str(exc)]
    err = from_rpc_error(exc)
    reason = f" {err.reason}" if err.reason and err.reason != Reason.UNKNOWN else ""
    lines = [f"{code.name}{reason}: {err.message or '(no message)'}"]
    lines += [f"  {v.field}: {v.description}" for v in err.field_violations]
    lines += [f"  {v.subject}: {v.description}" for v in err.precondition_violations]
    if code == grpc.StatusCode.UNAUTHENTICATED:
        lines.append(f"  hint: {CREDENTIALS_HINT}")
    return lines
