"""The CLI's channels to the mapper and the poster, with the client settings the poster uses to
reach the mapper (xerolink_common.security.client_channel): XEROLINK_TLS_CA (TLS),
XEROLINK_TLS_CLIENT_CERT/XEROLINK_TLS_CLIENT_KEY (mutual TLS) and XEROLINK_CALLER_TOKEN (a bearer
token), each optional."""

from __future__ import annotations

import grpc
from xerolink_common.security import ClientSettingsError, client_channel

from xerolink_cli.usage import UsageError


def open_channel(target: str) -> grpc.Channel:
    """A channel to `target`; incomplete or unreadable settings are a usage error (nothing sent)."""
    try:
        return client_channel(target)
    except ClientSettingsError as exc:
        raise UsageError(str(exc)) from exc
