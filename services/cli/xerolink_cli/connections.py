"""Registering an organisation of the local Xero emulator as a poster connection: what the demo,
the benchmarks and the tests all do before they post."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc


def register_emulated_connection(
    stub: poster_grpc.PosterServiceStub,
    connection_id: str,
    xero_base_url: str,
    organisation: Mapping[str, Any],
    context: mapper_pb2.MappingContext,
    metadata: Sequence[tuple[str, str]] | None = None,
) -> poster_pb2.Connection:
    """`organisation` is what the emulator answers when it creates one (tenant_id and tokens)."""
    response = stub.CreateConnection(
        poster_pb2.CreateConnectionRequest(
            connection=poster_pb2.Connection(
                connection_id=connection_id,
                xero_base_url=xero_base_url,
                xero_tenant_id=organisation["tenant_id"],
                access_token=organisation["access_token"],
                refresh_token=organisation["refresh_token"],
                mapping_context=context,
            )
        ),
        metadata=metadata,
        timeout=10,
    )
    connection: poster_pb2.Connection = response.connection
    return connection
