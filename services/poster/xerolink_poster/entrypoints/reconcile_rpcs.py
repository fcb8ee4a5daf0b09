"""Reconcile: a mixin of the poster's servicer (docs/drift.md, Reconciliation)."""

from __future__ import annotations

import grpc
from xerolink.poster.v1 import drift_pb2


class ReconcileRpcs:
    def Reconcile(
        self, request: drift_pb2.ReconcileRequest, context: grpc.ServicerContext
    ) -> drift_pb2.ReconcileResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Reconcile is not implemented yet")
        raise AssertionError("abort raises")
