"""The connection lifecycle RPCs of PosterService (a mixin of the servicer): thin; the work is in
service_layer/connection_lifecycle.py. Every call is authorised per connection."""

from __future__ import annotations

import grpc
from xerolink.poster.v1 import connection_pb2, organisations_pb2
from xerolink.type.v1 import errors_pb2
from xerolink_common.grpc_errors import translate_errors
from xerolink_common.security import require_connection

from xerolink_poster.entrypoints.connection_messages import discrepancy_messages, status_message
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper, ConnectRequest, TaxRemap, context_of
from xerolink_poster.service_layer.posting import Poster
from xerolink_poster.service_layer.routing_changes import update_routing

# What an existing connection keeps instead of a field of ConnectOrganisation.
_IGNORED = {
    "mapping_context": errors_pb2.Warning(
        code="FIELD_IGNORED",
        field="mapping_context",
        message="the connection exists, so it keeps its own mapping context and account allocation (a "
        "replacement organisation never overwrites them): change the allocation with RemapAccounts and the "
        "tax types with RemapTaxTypes",
    ),
    "xero_base_url": errors_pb2.Warning(
        code="FIELD_IGNORED",
        field="xero_base_url",
        message="the connection exists, so it keeps its Xero API host; create a new connection for another host",
    ),
}


class ConnectionRpcs:
    keeper: ConnectionKeeper
    poster: Poster

    def _changed(self, connection_id: str) -> None:
        # The poster caches connections for posting; a lifecycle change must be seen at once.
        self.poster.forget_connection(connection_id)

    @translate_errors
    def ConnectOrganisation(
        self, request: connection_pb2.ConnectOrganisationRequest, context: grpc.ServicerContext
    ) -> connection_pb2.ConnectOrganisationResponse:
        require_connection(request.connection_id)
        outcome = self.keeper.connect(
            ConnectRequest(
                connection_id=request.connection_id,
                authorization_code=request.authorization_code,
                redirect_uri=request.redirect_uri,
                xero_app=request.xero_app,
                xero_tenant_id=request.xero_tenant_id,
                xero_base_url=request.xero_base_url,
                context=request.mapping_context if request.HasField("mapping_context") else None,
            )
        )
        self._changed(request.connection_id)
        return connection_pb2.ConnectOrganisationResponse(
            connection_id=outcome.row.connection_id,
            status=status_message(outcome.row),
            replaced_organisation=outcome.replaced,
            previous_tenant_id=outcome.previous_tenant_id,
            warnings=[_IGNORED[f] for f in outcome.ignored_fields],
        )

    @translate_errors
    def RefreshConnection(
        self, request: connection_pb2.RefreshConnectionRequest, context: grpc.ServicerContext
    ) -> connection_pb2.RefreshConnectionResponse:
        require_connection(request.connection_id)
        outcome = self.keeper.refresh(request.connection_id)
        self._changed(request.connection_id)
        return connection_pb2.RefreshConnectionResponse(status=status_message(outcome.row), exchanged=outcome.exchanged)

    @translate_errors
    def DisconnectConnection(
        self, request: connection_pb2.DisconnectConnectionRequest, context: grpc.ServicerContext
    ) -> connection_pb2.DisconnectConnectionResponse:
        require_connection(request.connection_id)
        row = self.keeper.disconnect(request.connection_id)
        self._changed(request.connection_id)
        return connection_pb2.DisconnectConnectionResponse(status=status_message(row))

    @translate_errors
    def GetAllocationDiscrepancies(
        self, request: connection_pb2.GetAllocationDiscrepanciesRequest, context: grpc.ServicerContext
    ) -> connection_pb2.GetAllocationDiscrepanciesResponse:
        require_connection(request.connection_id)
        row, found = self.keeper.discrepancies(request.connection_id, request.refresh_chart)
        if request.refresh_chart:
            self._changed(request.connection_id)
        return connection_pb2.GetAllocationDiscrepanciesResponse(
            discrepancies=discrepancy_messages(found), account_allocation=dict(context_of(row).account_allocation)
        )

    @translate_errors
    def RemapAccounts(
        self, request: connection_pb2.RemapAccountsRequest, context: grpc.ServicerContext
    ) -> connection_pb2.RemapAccountsResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        merged, found = self.keeper.remap(
            request.connection_id, dict(request.account_allocation), request.validate_only
        )
        if not request.validate_only:
            self._changed(request.connection_id)
        return connection_pb2.RemapAccountsResponse(
            account_allocation=merged, discrepancies=discrepancy_messages(found)
        )

    @translate_errors
    def RemapTaxTypes(
        self, request: connection_pb2.RemapTaxTypesRequest, context: grpc.ServicerContext
    ) -> connection_pb2.RemapTaxTypesResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        untaxed = {f.name: value for f, value in request.untaxed_line_tax_types.ListFields()}
        remap = TaxRemap(
            request.connection_id,
            dict(request.tax_code_map),
            dict(request.purchase_tax_code_map),
            untaxed,
            request.validate_only,
        )
        after, problems = self.keeper.remap_tax_types(remap)
        if not request.validate_only:
            self._changed(request.connection_id)
        return connection_pb2.RemapTaxTypesResponse(
            tax_code_map=dict(after.tax_code_map),
            purchase_tax_code_map=dict(after.purchase_tax_code_map),
            untaxed_line_tax_types=after.untaxed_line_tax_types,
            problems=[
                connection_pb2.TaxSettingProblem(
                    setting=p.setting, tax_type=p.tax_type, problem=p.problem, description=p.description
                )
                for p in problems
            ],
        )

    @translate_errors
    def UpdateConnectionRouting(
        self, request: organisations_pb2.UpdateConnectionRoutingRequest, context: grpc.ServicerContext
    ) -> organisations_pb2.UpdateConnectionRoutingResponse:
        require_connection(request.connection_id)
        # Routing sends this connection's transactions to the others: the caller must be one who
        # may post to each of them, or it could book one firm's money in another's organisation.
        for named in (request.routing.trust_connection_id, *request.routing.division_connections.values()):
            if named:
                require_connection(named)
        self.poster.require_known_connection(request.connection_id)
        routing, changed = update_routing(self.keeper.db, request.connection_id, request.routing, request.validate_only)
        for connection_id in changed:
            self._changed(connection_id)
        return organisations_pb2.UpdateConnectionRoutingResponse(routing=routing)
