"""PosterService over gRPC: thin; validation and work live in the service layer."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.errors import FieldViolation, invalid_argument, not_found
from xerolink_common.grpc_errors import translate_errors, translate_stream_errors
from xerolink_common.reasons import Reason
from xerolink_common.security import current_caller, require_connection

from xerolink_poster.entrypoints import proto_mapping as pm
from xerolink_poster.entrypoints.backfill_rpcs import BackfillRpcs
from xerolink_poster.entrypoints.connection_rpcs import ConnectionRpcs
from xerolink_poster.entrypoints.correction_rpcs import CorrectionRpcs
from xerolink_poster.entrypoints.drift_messages import with_drifts
from xerolink_poster.entrypoints.drift_rpcs import DriftRpcs
from xerolink_poster.entrypoints.matter_rpcs import MatterRpcs
from xerolink_poster.entrypoints.reconcile_rpcs import ReconcileRpcs
from xerolink_poster.entrypoints.request_context import actor_of, link_of, record_of
from xerolink_poster.entrypoints.unlink_rpcs import UnlinkRpcs, link_filter
from xerolink_poster.service_layer import connections, drift_views, queries
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.posting import Poster
from xerolink_poster.service_layer.routing_changes import apply_new_routing

SERVICE_NAME = poster_pb2.DESCRIPTOR.services_by_name["PosterService"].full_name
MAX_BATCH = 1000


def _visible(view: queries.PostingView, posting_id: str) -> queries.PostingView:
    """A posting of a connection the caller may not use looks exactly like a missing one, so one
    tenant cannot even learn that another's posting exists."""
    if not current_caller().may_use(view.posting.connection_id):
        raise not_found(Reason.POSTING_NOT_FOUND, f"no posting {posting_id}; list postings to find it")
    return view


def _state_filter(state: int) -> str:
    """The registry's state for a filter; an enum number this version does not know is refused
    rather than read as "no filter" (which would list everything)."""
    if state == poster_pb2.LINK_STATE_UNSPECIFIED:
        return ""
    found = pm.PROTO_TO_STATE.get(state)  # type: ignore[call-overload]
    if found is None:
        raise invalid_argument(
            Reason.UNKNOWN_STATE,
            f"state {state} is not a link state",
            [FieldViolation("state", "use a LinkState value")],
        )
    return str(found)


def _group_filter(group: int) -> int:
    if group not in poster_pb2.LinkGroup.values():
        raise invalid_argument(
            Reason.UNKNOWN_GROUP,
            f"group {group} is not a link group",
            [FieldViolation("group", "use a LinkGroup value")],
        )
    return group


def _check_batch(size: int) -> None:
    if size > MAX_BATCH:
        raise invalid_argument(
            Reason.BATCH_TOO_LARGE,
            f"at most {MAX_BATCH} transactions per request; split the batch",
            [FieldViolation("transactions", f"{size} items, at most {MAX_BATCH}")],
        )


class PosterServicer(
    UnlinkRpcs,
    CorrectionRpcs,
    BackfillRpcs,
    ConnectionRpcs,
    MatterRpcs,
    DriftRpcs,
    ReconcileRpcs,
    poster_grpc.PosterServiceServicer,
):
    def __init__(self, poster: Poster, changes: StateChanges, keeper: ConnectionKeeper) -> None:
        self.poster = poster
        self.db = poster.db
        self.changes = changes
        self.keeper = keeper

    @translate_errors
    def PostTransaction(
        self, request: poster_pb2.PostTransactionRequest, context: grpc.ServicerContext
    ) -> poster_pb2.PostTransactionResponse:
        require_connection(request.connection_id)
        outcome = self.poster.post(request.connection_id, request.transaction, request.request_id, actor_of(context))
        return pm.post_response(outcome, request.connection_id)

    @translate_errors
    def BatchPostTransactions(
        self, request: poster_pb2.BatchPostTransactionsRequest, context: grpc.ServicerContext
    ) -> poster_pb2.BatchPostTransactionsResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        _check_batch(len(request.transactions))
        results = self.poster.post_many(request.connection_id, request.transactions, actor_of(context))
        return poster_pb2.BatchPostTransactionsResponse(results=pm.results_messages(results, request.connection_id))

    @translate_stream_errors
    def StreamPostTransactions(
        self, request_iterator: Iterator[poster_pb2.StreamPostTransactionsRequest], context: grpc.ServicerContext
    ) -> Iterator[poster_pb2.StreamPostTransactionsResponse]:
        actor = actor_of(context)
        for request in request_iterator:
            require_connection(request.connection_id)
            self.poster.require_known_connection(request.connection_id)
            _check_batch(len(request.transactions))
            results = self.poster.post_many(request.connection_id, request.transactions, actor)
            yield poster_pb2.StreamPostTransactionsResponse(results=pm.results_messages(results, request.connection_id))

    @translate_errors
    def GetPosting(
        self, request: poster_pb2.GetPostingRequest, context: grpc.ServicerContext
    ) -> poster_pb2.GetPostingResponse:
        posting_id = queries.posting_id_of(request.name)
        view = _visible(queries.get_posting(self.db, posting_id), posting_id)
        return poster_pb2.GetPostingResponse(posting=pm.posting_message(view.posting, view.link))

    @translate_errors
    def ListPostings(
        self, request: poster_pb2.ListPostingsRequest, context: grpc.ServicerContext
    ) -> poster_pb2.ListPostingsResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        views, token = queries.list_postings(
            self.db,
            request.connection_id,
            _state_filter(request.state),
            request.page_size,
            request.page_token,
        )
        return poster_pb2.ListPostingsResponse(
            postings=[pm.posting_message(v.posting, v.link) for v in views], next_page_token=token
        )

    @translate_stream_errors
    def WatchPosting(
        self, request: poster_pb2.WatchPostingRequest, context: grpc.ServicerContext
    ) -> Iterator[poster_pb2.WatchPostingResponse]:
        posting_id = queries.posting_id_of(request.name)
        _visible(queries.get_posting(self.db, posting_id), posting_id)
        for view in queries.watch_posting(self.db, posting_id, self.changes, lambda: not context.is_active()):
            yield poster_pb2.WatchPostingResponse(posting=pm.posting_message(view.posting, view.link))

    @translate_errors
    def GetLink(self, request: poster_pb2.GetLinkRequest, context: grpc.ServicerContext) -> poster_pb2.GetLinkResponse:
        connection_id, record = link_of(request)
        self.poster.require_known_connection(connection_id)
        link, audit = queries.get_link(
            self.db, connection_id, record or record_of(request.record, "record"), request.include_audit
        )
        drifts = drift_views.open_drifts(self.db, [link]).get(link.id or 0, [])
        return poster_pb2.GetLinkResponse(link=with_drifts(pm.link_message(link, audit), link, drifts))

    @translate_errors
    def ListLinks(
        self, request: poster_pb2.ListLinksRequest, context: grpc.ServicerContext
    ) -> poster_pb2.ListLinksResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        wanted = link_filter(request, _group_filter(int(request.group)), _state_filter(request.state))
        links, token = queries.list_links(self.db, request.connection_id, wanted, request.page_size, request.page_token)
        drifts = drift_views.open_drifts(self.db, links)
        messages = [with_drifts(pm.link_message(x), x, drifts.get(x.id or 0, [])) for x in links]
        return poster_pb2.ListLinksResponse(links=messages, next_page_token=token)

    @translate_errors
    def CreateConnection(
        self, request: poster_pb2.CreateConnectionRequest, context: grpc.ServicerContext
    ) -> poster_pb2.CreateConnectionResponse:
        c = request.connection
        require_connection(c.connection_id)
        for named in (c.routing.trust_connection_id, *c.routing.division_connections.values()):
            if named:
                require_connection(named)  # as UpdateConnectionRouting
        row = connections.create_connection(
            self.db,
            self.keeper.vault,
            c.connection_id,
            c.xero_base_url,
            c.xero_tenant_id,
            c.access_token,
            c.refresh_token,
            c.mapping_context,
            c.xero_app,
            (lambda uow: apply_new_routing(uow, c.connection_id, c.routing)) if c.routing.ByteSize() else None,
        )
        for named in (c.routing.trust_connection_id, *c.routing.division_connections.values()):
            self.poster.forget_connection(named)  # its ledgers may have changed
        return poster_pb2.CreateConnectionResponse(connection=pm.connection_message(row))

    @translate_errors
    def GetConnection(
        self, request: poster_pb2.GetConnectionRequest, context: grpc.ServicerContext
    ) -> poster_pb2.GetConnectionResponse:
        require_connection(request.connection_id)
        row = connections.get_connection(self.db, request.connection_id)
        return poster_pb2.GetConnectionResponse(connection=pm.connection_message(row))
