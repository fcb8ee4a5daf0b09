"""ListDrift and ResolveDrift: a mixin of the poster's servicer (docs/drift.md)."""

from __future__ import annotations

import grpc
from xerolink.poster.v1 import drift_pb2


class DriftRpcs:
    def ListDrift(
        self, request: drift_pb2.ListDriftRequest, context: grpc.ServicerContext
    ) -> drift_pb2.ListDriftResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "ListDrift is not implemented yet")
        raise AssertionError("abort raises")

    def ResolveDrift(
        self, request: drift_pb2.ResolveDriftRequest, context: grpc.ServicerContext
    ) -> drift_pb2.ResolveDriftResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "ResolveDrift is not implemented yet")
        raise AssertionError("abort raises")
