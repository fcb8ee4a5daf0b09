"""Wires the poster: database (migrated), mapper client, Xero client, dispatcher, gRPC server, and
(when configured) the webhook endpoint, its event worker and the poller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.grpc_server import RunningServer, create_server
from xerolink_common.listening import check_exposure
from xerolink_common.security import ServerSecurity

from xerolink_poster.adapters import token_vault
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.write_turns import serve_callers_on_this_thread
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.adapters.xero_identity import XeroIdentity
from xerolink_poster.domain.webhook_events import WebhookEvent
from xerolink_poster.entrypoints.config import PosterConfig
from xerolink_poster.entrypoints.grpc_servicer import SERVICE_NAME, PosterServicer
from xerolink_poster.entrypoints.webhook_server import WebhookEndpoint
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper, reseal_with_active_key
from xerolink_poster.service_layer.correcting import Corrections
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.drift_polling import Poller
from xerolink_poster.service_layer.drift_resolving import DriftResolver
from xerolink_poster.service_layer.matter_options import MatterOptions
from xerolink_poster.service_layer.metrics import PosterMetrics
from xerolink_poster.service_layer.posting import Poster
from xerolink_poster.service_layer.reconciliation import Reconciliation
from xerolink_poster.service_layer.webhook_intake import store_events
from xerolink_poster.service_layer.webhook_processing import EventProcessor


@dataclass
class PosterApp:
    config: PosterConfig
    db: Database
    mapper: MapperClient
    xero: XeroClient
    dispatcher: Dispatcher | None
    server: RunningServer
    keeper: ConnectionKeeper | None = None
    # Xero's webhooks (received here, processed by the event worker) and the poller.
    webhooks: WebhookEndpoint | None = None
    events: EventProcessor | None = None
    poller: Poller | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking requests, lets the dispatcher finish its calls and hand its leases back."""
        if self.dispatcher is not None:
            self.dispatcher.request_stop()  # no new Xero calls while the server drains
        if self.webhooks is not None:
            self.webhooks.stop()
        self.server.stop(grace)
        for part in (self.events, self.poller):
            if part is not None:
                part.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.xero.close()
        if self.keeper is not None:
            self.keeper.identity.close()
        self.mapper.close()
        self.db.dispose()


def start(config: PosterConfig, security: ServerSecurity | None = None) -> PosterApp:
    # Before the registry is opened: a refused start leaves nothing behind.
    check_exposure("poster", config.address, security is not None and security.authenticated)
    vault = config.token_vault or token_vault.installed()
    token_vault.install(vault)
    db = open_database(config.database_url, config.postgres)
    migrate(db)
    reseal_with_active_key(db, vault)
    mapper = MapperClient(config.mapper_target)
    xero = XeroClient(timeout=config.dispatcher.http_timeout)
    keeper = ConnectionKeeper(
        db, vault, config.xero_apps, XeroIdentity(config.dispatcher.http_timeout), config.instance_id
    )
    changes = StateChanges()
    metrics = PosterMetrics(db)
    dispatcher = (
        Dispatcher(db, xero, config.dispatcher, config.instance_id, changes, metrics, keeper)
        if config.run_dispatcher
        else None
    )
    servicer = PosterServicer(Poster(db, mapper, config.grouping), changes, keeper)
    servicer.corrections = Corrections(db, dispatcher)
    servicer.matter_options = MatterOptions(db, dispatcher)
    servicer.drift_resolver = DriftResolver(db, dispatcher)
    servicer.reconciliation = Reconciliation(db, dispatcher)
    server = create_server(
        config.address,
        [lambda s: poster_grpc.add_PosterServiceServicer_to_server(servicer, s)],
        [SERVICE_NAME],
        max_workers=config.workers,
        interceptors=security.interceptors if security else (),
        credentials=security.credentials if security else None,
        # Their transactions go before the dispatcher's (adapters/write_turns.py).
        thread_initializer=serve_callers_on_this_thread,
    )
    events = EventProcessor(db, dispatcher) if dispatcher is not None else None
    poller = Poller(db, dispatcher, config.polling) if dispatcher is not None and config.polling.interval > 0 else None
    # Without a dispatcher the endpoint still stores events: a poster that runs one processes them.
    webhooks = (
        WebhookEndpoint(
            config.webhooks,
            lambda delivered: _store_for_xero(db, delivered),
            events.notify if events else lambda: None,
        )
        if config.webhooks.enabled
        else None
    )
    if dispatcher is not None:
        dispatcher.start()
    for part in (events, poller, webhooks):
        if part is not None:
            part.start()
    return PosterApp(config, db, mapper, xero, dispatcher, server, keeper, webhooks, events, poller)


def _store_for_xero(db: Database, delivered: Sequence[WebhookEvent]) -> int:
    """Stores a delivery's events in the endpoint's thread (one a request) while Xero waits for
    the answer, 5 s at most: its transaction goes before the dispatcher's (adapters/write_turns.py)."""
    serve_callers_on_this_thread()
    return store_events(db, delivered, now_us())
