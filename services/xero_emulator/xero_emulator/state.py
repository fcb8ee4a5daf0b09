"""Everything one emulator process holds: organisations, identity, limits, idempotency, faults,
webhooks."""

from __future__ import annotations

import threading
from typing import Any

from xero_emulator.auth import App, Identity
from xero_emulator.config import EmulatorConfig
from xero_emulator.domain import hand_edits
from xero_emulator.domain.errors import NotFound
from xero_emulator.domain.ledger import ledger_view
from xero_emulator.domain.organisation import Organisation
from xero_emulator.domain.reports import profit_by_option
from xero_emulator.faults import Faults
from xero_emulator.idempotency import IdempotencyStore
from xero_emulator.limits import RateLimiter
from xero_emulator.request_log import RequestLog
from xero_emulator.webhooks import Webhooks


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.organisations: dict[str, Organisation] = {}
        self.identity = Identity(config)
        self.limiter = RateLimiter(config)
        self.idempotency = IdempotencyStore(config.minutes(config.idempotency_minutes))
        self.faults = Faults(config.seed)
        self.requests = RequestLog()
        self.webhooks = Webhooks(config.minute_seconds)
        self._configure_webhooks()

    def _configure_webhooks(self) -> None:
        if self.config.webhook_url is not None or self.config.webhook_key is not None:
            self.webhooks.configure(self.config.webhook_url or "", self.config.webhook_key or "")

    def create_organisation(
        self,
        name: str = "Demo Law Firm Pty Ltd",
        *,
        region: str = "AU",
        is_demo: bool = False,
        org_class: str | None = None,
        client_id: str | None = None,
        without_accounts: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """A new organisation of a region (AU, NZ, UK, US or CA; ValueError otherwise) connected to an
        app (a new one unless client_id names one), with an authorisation code to exchange and, for
        convenience, tokens ready to use."""
        org = Organisation(name, region, is_demo=is_demo, org_class=org_class, without_accounts=tuple(without_accounts))
        tenant_id = org.tenant_id
        org.on_change = lambda resource, obj, created: self.webhooks.record(tenant_id, resource, obj, created)
        with self.lock:
            self.organisations[org.tenant_id] = org
        app: App | None = self.identity.apps.get(client_id) if client_id else None
        if client_id and app is None:
            raise NotFound("App", client_id)
        if app is None:
            app = self.identity.create_app()
        connection = self.identity.connect(app, org.tenant_id, org.name)
        tokens = self.identity.tokens_for(app)
        return {
            "tenant_id": org.tenant_id,
            "tenant_name": org.name,
            "region": org.region.key,
            "connection_id": connection["id"],
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "authorization_code": self.identity.issue_code(app),
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_in": tokens["expires_in"],
        }

    def organisation(self, tenant_id: str) -> Organisation:
        org = self.organisations.get(tenant_id.lower()) if isinstance(tenant_id, str) else None
        if org is None:
            raise NotFound("Organisation", str(tenant_id))
        return org

    def ledger(self, tenant_id: str) -> dict[str, Any]:
        org = self.organisation(tenant_id)
        with org.lock:
            return ledger_view(org)

    def profit_by_option(
        self, tenant_id: str, category_id: str, from_date: str | None = None, to_date: str | None = None
    ) -> dict[str, Any]:
        org = self.organisation(tenant_id)
        with org.lock:
            if category_id.lower() not in org.tracking_categories:
                raise NotFound("TrackingCategories", category_id)
            return profit_by_option(org, category_id, from_date, to_date)

    def hand_edit(self, tenant_id: str, resource: str, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """A change made by a person in Xero's web app (domain/hand_edits.py); not an API call."""
        org = self.organisation(tenant_id)
        with org.lock:
            return hand_edits.hand_edit(org, resource, object_id, changes)

    def bank_feed_match(self, tenant_id: str, match: dict[str, Any]) -> dict[str, Any]:
        """A payment made by a bank-feed reconciliation in Xero's web app; not an API call."""
        org = self.organisation(tenant_id)
        with org.lock:
            return hand_edits.bank_feed_match(org, match)

    def reset(self) -> None:
        with self.lock:
            self.organisations.clear()
        self.identity = Identity(self.config)
        self.limiter.reset()
        self.idempotency.reset()
        self.idempotency.set_ttl(self.config.minutes(self.config.idempotency_minutes))
        self.faults.clear()
        self.requests.clear()
        self.webhooks.reset()
        self._configure_webhooks()
