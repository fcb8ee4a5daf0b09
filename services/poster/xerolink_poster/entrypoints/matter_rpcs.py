"""CloseMatter and ListMatterOptions: a mixin of the poster's servicer. Thin: the work is in
service_layer/matter_options.py."""

from __future__ import annotations

import grpc
from xerolink.poster.v1 import organisations_pb2
from xerolink_common.grpc_errors import translate_errors
from xerolink_common.security import require_connection

from xerolink_poster.domain import matters as dom
from xerolink_poster.entrypoints import proto_mapping as pm
from xerolink_poster.service_layer.matter_options import MatterOptions
from xerolink_poster.service_layer.ports import MatterOptionLinkRow
from xerolink_poster.service_layer.posting import Poster

_STATES = {
    dom.OptionState.ACTIVE: organisations_pb2.MATTER_OPTION_STATE_ACTIVE,
    dom.OptionState.ARCHIVED: organisations_pb2.MATTER_OPTION_STATE_ARCHIVED,
}


def option_message(row: MatterOptionLinkRow) -> organisations_pb2.MatterOption:
    return organisations_pb2.MatterOption(
        action_id=row.action_id,
        tracking_category_id=row.tracking_category_id,
        tracking_option_id=row.tracking_option_id,
        name=row.name,
        state=_STATES.get(dom.OptionState(row.state), organisations_pb2.MATTER_OPTION_STATE_UNSPECIFIED),
        update_time=pm.timestamp(row.update_us),
    )


class MatterRpcs:
    """Needs `matter_options`, set by bootstrap."""

    matter_options: MatterOptions
    poster: Poster

    @translate_errors
    def CloseMatter(
        self, request: organisations_pb2.CloseMatterRequest, context: grpc.ServicerContext
    ) -> organisations_pb2.CloseMatterResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        row = self.matter_options.close(request.connection_id, request.action_id)
        if row is None:
            return organisations_pb2.CloseMatterResponse()
        return organisations_pb2.CloseMatterResponse(option=option_message(row))

    @translate_errors
    def ListMatterOptions(
        self, request: organisations_pb2.ListMatterOptionsRequest, context: grpc.ServicerContext
    ) -> organisations_pb2.ListMatterOptionsResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        rows, token = self.matter_options.list(request.connection_id, request.page_size, request.page_token)
        return organisations_pb2.ListMatterOptionsResponse(
            options=[option_message(r) for r in rows], next_page_token=token
        )
