"""Reports by matter: before a job's elements are sent, every matter its lines carry gets its
tracking option in the connection's category (domain/matters.py), found or created once.

The registry first; else Xero's categories and options are read (archived ones included) and the
category and the option are found by their exact names (the configured category name; the
matter's id), adopted, or created. Nothing is created again after a lost answer without reading
Xero first, so a lost answer never makes a second option. An option archived by CloseMatter is
made ACTIVE again before its matter's lines use it. One job of a tenant at a time does this (the
lock), every call through the tenant's gate.

Lines send the names beside the ids (xero_payloads.line_tracking), so the names must be Xero's:
whenever the category is read, the registry takes the category's and its options' names as Xero
has them now, each found by its ID (the firm may rename them in Xero). When Xero refuses an
element over its tracking anyway (a name renamed since), `refresh` reads the category by its ID,
takes its names, and the element is sent again once (creating.py)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.tables import ConnectionRow, MatterOptionLinkRow, TrackingCategoryLinkRow
from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer
from xerolink_poster.domain import matters as dom
from xerolink_poster.service_layer import tracing
from xerolink_poster.service_layer.dispatch import answers
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.results import Results
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.ports import XeroCaller
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
CATEGORIES = "TrackingCategories"


def tracked_category(connection: ConnectionRow) -> str | None:
    """The name of the connection's category for matters when its stored context tracks matters
    (MappingContext.matter_tracking.enabled); None when it does not."""
    context = mapper_pb2.MappingContext()
    context.ParseFromString(connection.mapping_context or b"")
    if not context.matter_tracking.enabled:
        return None
    return dom.category_name(context.matter_tracking.category_name)


class Trouble(Exception):
    """Why a matter's option cannot be had now. `final`: the links fail (the firm must act first);
    otherwise they are tried again (`at`, `count` as Results.retry)."""

    def __init__(
        self, reason: Reason, message: str, final: bool = False, at: float | None = None, count: bool = True
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.final = final
        self.at = at
        self.count = count


def call_trouble(answer: XeroAnswer, what: str, blocked_until: float) -> Trouble | None:
    """None for a success; otherwise what the answer means for the links waiting on it. Nothing a
    failed call did is assumed: the next attempt reads Xero before it creates anything."""
    if answer.ok and isinstance(answer.body, dict):
        return None
    verdict = answers.call_verdict(answer)
    if verdict == answers.RATE_LIMITED:
        at = blocked_until or None
        return Trouble(Reason.XERO_RATE_LIMITED, f"{what}: Xero asked to slow down", at=at, count=False)
    if verdict == answers.UNAVAILABLE:
        return Trouble(Reason.XERO_UNAVAILABLE, f"{what}: Xero answered {answer.status}")
    if verdict == answers.UNAUTHORISED:
        return Trouble(
            Reason.XERO_UNAUTHORISED,
            f"{what}: Xero refused the connection's credentials ({answer.status}); reconnect the organisation",
        )
    return Trouble(Reason.XERO_TRACKING_FAILED, f"{what}: {answers.refusal_message(answer)}")


class Matters:
    def __init__(self, shared: Shared, tenant_id: str, gate: Gate, results: Results) -> None:
        self.d = shared
        self.tenant_id = tenant_id
        self.gate = gate
        self.results = results
        # One job of the tenant at a time finds or creates options (and CloseMatter archives
        # under it), so two never create one twice and none archives one a job is about to use.
        self.lock = threading.Lock()

    def refresh(self, works: list[Work]) -> list[Work]:
        """After Xero refused these entries over their lines' tracking: reads each connection's
        category again by its ID, keeps the names Xero has now, and gives the entries their
        tracking with them. Returns the entries to send again; the others fail or wait, saying why."""
        by_connection: dict[str, list[Work]] = defaultdict(list)
        for w in works:
            by_connection[w.connection.connection_id].append(w)
        ready: list[Work] = []
        for members in by_connection.values():
            if self._reread(members):
                ready += self._ensure_connection(members)
        return ready

    def _reread(self, works: list[Work]) -> bool:
        connection = works[0].connection
        cid = connection.connection_id
        with UnitOfWork(self.d.db, write=False) as uow:
            link = uow.matters.get_category(cid)
        if link is None:
            return True  # nothing linked to read: the ensure finds or creates it
        traced = [(w.row.trace_context, w.link) for w in works]
        try:
            with tracing.xero_call(CATEGORIES, self.tenant_id, traced):
                category = self._category_by_id(self.gate.credentials(connection), link)
        except Trouble as trouble:
            self._report([(w, trouble) for w in works])
            return False
        except Uncertain as exc:
            self._report([(w, Trouble(Reason.XERO_NO_ANSWER, f"tracking category: {exc}")) for w in works])
            return False
        self._remember_names(cid, category)
        return True

    def ensure(self, works: list[Work]) -> list[Work]:
        """Sets each entry's `tracking` to the options of the matters its lines carry. Returns
        the entries whose every option is known; the others fail or are tried again, saying why."""
        by_connection: dict[str, list[Work]] = defaultdict(list)
        for w in works:
            by_connection[w.connection.connection_id].append(w)
        ready: list[Work] = []
        for members in by_connection.values():
            ready += self._ensure_connection(members)
        return ready

    # -- one connection ------------------------------------------------------------------------
    def _ensure_connection(self, works: list[Work]) -> list[Work]:
        connection = works[0].connection
        cid = connection.connection_id
        name = tracked_category(connection)
        assert name is not None
        wanted: dict[int, list[Work]] = defaultdict(list)
        for w in works:
            assert w.operation is not None
            for action_id in payloads.tracked_matters(w.operation):
                wanted[action_id].append(w)
        known, category = self._registry(cid, sorted(wanted))
        missing = [a for a in wanted if a not in known or known[a].state != dom.OptionState.ACTIVE]
        troubles: dict[int, Trouble] = {}
        if missing:
            traced = [(w.row.trace_context, w.link) for a in missing for w in wanted[a]]
            with tracing.xero_call(CATEGORIES, self.tenant_id, traced):
                troubles = self._from_xero(connection, name, category, {a: known.get(a) for a in missing})
            known, category = self._registry(cid, sorted(wanted))
        failed: dict[int, tuple[Work, Trouble]] = {}
        for action_id, trouble in troubles.items():
            for w in wanted[action_id]:
                held = failed.get(w.row.id)
                if held is None or (trouble.final and not held[1].final):
                    failed[w.row.id] = (w, trouble)
        self._report(list(failed.values()))
        ready: list[Work] = []
        for w in works:
            if w.row.id in failed:
                continue
            assert w.operation is not None and category is not None
            w.tracking = {}
            for action_id in payloads.tracked_matters(w.operation):
                row = known[action_id]
                assert row.state == dom.OptionState.ACTIVE
                w.tracking[action_id] = dom.LineTracking(
                    row.tracking_category_id, category.category_name, row.tracking_option_id, row.name
                )
            ready.append(w)
        return ready

    def _registry(
        self, connection_id: str, action_ids: list[int]
    ) -> tuple[dict[int, MatterOptionLinkRow], TrackingCategoryLinkRow | None]:
        with UnitOfWork(self.d.db, write=False) as uow:
            return uow.matters.options_of(connection_id, action_ids), uow.matters.get_category(connection_id)

    def _report(self, failed: list[tuple[Work, Trouble]]) -> None:
        by_trouble: dict[int, tuple[Trouble, list[Work]]] = {}
        for w, trouble in failed:
            by_trouble.setdefault(id(trouble), (trouble, []))[1].append(w)
        for trouble, members in by_trouble.values():
            if trouble.final:
                self.results.fail(members, trouble.reason, trouble.message)
            else:
                self.results.retry(
                    members,
                    uncertain=False,
                    reason=trouble.reason,
                    message=trouble.message,
                    at=trouble.at,
                    count=trouble.count,
                )

    # -- Xero ----------------------------------------------------------------------------------
    def _from_xero(
        self,
        connection: ConnectionRow,
        name: str,
        category_link: TrackingCategoryLinkRow | None,
        missing: dict[int, MatterOptionLinkRow | None],
    ) -> dict[int, Trouble]:
        """Finds, creates or reactivates the options of `missing` matters (None: not in the
        registry; else archived there). Returns the trouble of each matter that has none now."""
        try:
            creds = self.gate.credentials(connection)
            category = self._category(creds, connection.connection_id, name, category_link)
        except Trouble as trouble:
            return dict.fromkeys(missing, trouble)
        except Uncertain as exc:
            return dict.fromkeys(missing, Trouble(Reason.XERO_NO_ANSWER, f"tracking categories: {exc}"))
        self._remember_names(connection.connection_id, category)
        room = dom.room_for_options(category)
        troubles: dict[int, Trouble] = {}
        for action_id, link in sorted(missing.items()):
            try:
                room -= self._option(creds, connection.connection_id, category, action_id, link, room)
            except Trouble as trouble:
                troubles[action_id] = trouble
            except Uncertain as exc:
                troubles[action_id] = Trouble(Reason.XERO_NO_ANSWER, f"matter {action_id}'s tracking option: {exc}")
        return troubles

    def _categories(self, creds: Credentials) -> list[dom.XeroCategory]:
        # includeArchived: "Categories and options with a status of ARCHIVED will be included in
        # the response" (Xero's OpenAPI, GET TrackingCategories).
        answer = self.gate.call(creds, "GET", CATEGORIES, params={"includeArchived": "true"})
        trouble = call_trouble(answer, "reading the tracking categories", self.gate.blocked_until)
        if trouble is not None:
            raise trouble
        return dom.categories_of(answer.body)

    def _category_by_id(self, creds: Credentials, link: TrackingCategoryLinkRow) -> dom.XeroCategory:
        """The linked category as Xero has it now, with its ACTIVE and ARCHIVED options (GET
        TrackingCategories/{TrackingCategoryID}, getTrackingCategory in Xero's OpenAPI)."""
        answer = self.gate.call(creds, "GET", f"{CATEGORIES}/{link.tracking_category_id}")
        if answer.status == 404:
            raise Trouble(
                Reason.TRACKING_CATEGORY_ARCHIVED,
                f"the Xero tracking category {link.category_name!r} that holds the matters' options is no longer in "
                "Xero: its lines cannot carry it",
                final=True,
            )
        trouble = call_trouble(answer, "reading the tracking category", self.gate.blocked_until)
        if trouble is not None:
            raise trouble
        found = next((c for c in dom.categories_of(answer.body) if c.category_id == link.tracking_category_id), None)
        if found is None:
            raise Trouble(Reason.XERO_ANSWER_UNREADABLE, "Xero's answer named no tracking category")
        return found

    def _remember_names(self, connection_id: str, category: dom.XeroCategory) -> None:
        """The registry takes the names Xero has now for the linked category and the matters'
        options in it, each found by its ID: identity stays the ID, the names ride beside it."""

        def write(uow: UnitOfWork) -> None:
            link = uow.matters.get_category(connection_id)
            if link is not None and link.tracking_category_id == category.category_id and category.name:
                uow.matters.set_category_name(connection_id, category.name)
            renamed = dom.renamed_options(category, uow.matters.option_names(connection_id))
            if renamed:
                log.info(
                    "tracking options renamed in Xero: %s",
                    renamed,
                    extra={"tenant_id": self.tenant_id},
                )
            uow.matters.rename_options(connection_id, renamed, now_us())

        run_in_transaction(self.d.db, write)

    def _category(
        self, creds: Credentials, connection_id: str, name: str, link: TrackingCategoryLinkRow | None
    ) -> dom.XeroCategory:
        """The connection's category as Xero lists it now (with its options): the linked one,
        else the active one of its name (adopted), else a new one."""
        listed = self._categories(creds)
        if link is not None:
            found = next((c for c in listed if c.category_id == link.tracking_category_id), None)
            if found is None or found.status != dom.ACTIVE:
                state = "archived" if found is not None else "no longer"
                raise Trouble(
                    Reason.TRACKING_CATEGORY_ARCHIVED,
                    f"the Xero tracking category {link.category_name!r} that holds the matters' options is {state} "
                    "in Xero: restore it in Xero (Settings > Tracking categories), then post again",
                    final=True,
                )
            return found
        lookup = dom.find_category(listed, name)
        if lookup.finding is dom.CategoryFinding.ARCHIVED:
            raise Trouble(Reason.TRACKING_CATEGORY_ARCHIVED, lookup.message, final=True)
        if lookup.finding is dom.CategoryFinding.LIMIT:
            raise Trouble(Reason.TRACKING_CATEGORY_LIMIT, lookup.message, final=True)
        if lookup.finding is dom.CategoryFinding.ACTIVE:
            assert lookup.category is not None
            self._link_category(connection_id, name, lookup.category.category_id, dom.Origin.FOUND)
            return lookup.category
        answer = self.gate.call(creds, "PUT", CATEGORIES, body={"Name": name}, names=[f"tracking/{connection_id}"])
        trouble = call_trouble(answer, f"creating the tracking category {name!r}", self.gate.blocked_until)
        if trouble is not None:
            raise trouble
        created = next((c for c in dom.categories_of(answer.body) if c.name == name), None)
        if created is None:
            # Made or not, the next attempt reads the categories before it creates one.
            raise Trouble(Reason.XERO_ANSWER_UNREADABLE, f"Xero's answer named no tracking category {name!r}")
        self._link_category(connection_id, name, created.category_id, dom.Origin.CREATED)
        return created

    def _option(
        self,
        creds: Credentials,
        connection_id: str,
        category: dom.XeroCategory,
        action_id: int,
        link: MatterOptionLinkRow | None,
        room: int,
    ) -> int:
        """Makes the matter's option known and ACTIVE; returns how many options it made active."""
        name = dom.option_name(action_id)
        if link is not None:
            found = next((o for o in category.options if o.option_id == link.tracking_option_id), None)
            if found is None:
                raise Trouble(
                    Reason.XERO_TRACKING_FAILED,
                    f"matter {action_id}'s tracking option {link.tracking_option_id} is no longer in Xero's category "
                    f"{category.name!r} (deleted there): its lines cannot carry it",
                    final=True,
                )
        else:
            found = dom.find_option(category, name)
            if found is not None:
                with UnitOfWork(self.d.db, write=False) as uow:
                    holder = uow.matters.matter_of_option(connection_id, found.option_id)
                if holder is not None and holder != action_id:
                    raise Trouble(
                        Reason.TRACKING_OPTION_TAKEN,
                        f"the Xero option {name!r} of category {category.name!r} is matter {holder}'s option, "
                        f"renamed in Xero: give it back its name {str(holder)!r} in Xero, then post again",
                        final=True,
                    )
        made_active = 0
        if found is None:
            if room <= 0:
                raise Trouble(Reason.TRACKING_OPTION_LIMIT, dom.option_limit_message(category.name), final=True)
            found = self._create_option(creds, connection_id, category, name)
            made_active = 1
            origin = dom.Origin.CREATED
        else:
            origin = dom.Origin.FOUND
            if found.status != dom.ACTIVE:
                if room <= 0:
                    raise Trouble(Reason.TRACKING_OPTION_LIMIT, dom.option_limit_message(category.name), final=True)
                self._set_status(creds, category, found, dom.ACTIVE)
                made_active = 1
        self._link_option(connection_id, category, action_id, found, link, origin)
        return made_active

    def _create_option(
        self, creds: Credentials, connection_id: str, category: dom.XeroCategory, name: str
    ) -> dom.XeroOption:
        # PUT TrackingCategories/{id}/Options takes a TrackingOption (Xero's OpenAPI,
        # createTrackingOptions). Option names are unique in a category ("For each specified
        # tracking option the name must be unique.", Xero's refusal quoted in calcinai/xero-php#920).
        answer = self.gate.call(
            creds,
            "PUT",
            f"{CATEGORIES}/{category.category_id}/Options",
            body={"Name": name},
            names=[f"tracking/{connection_id}/{name}"],
        )
        trouble = call_trouble(answer, f"creating the tracking option {name!r}", self.gate.blocked_until)
        if trouble is not None:
            raise trouble
        created = next((o for o in dom.options_of(answer.body) if o.name == name), None)
        if created is None:
            raise Trouble(Reason.XERO_ANSWER_UNREADABLE, f"Xero's answer named no tracking option {name!r}")
        return created

    def _set_status(self, creds: Credentials, category: dom.XeroCategory, option: dom.XeroOption, status: str) -> None:
        set_status(self.gate, creds, category.category_id, option.option_id, status, self.gate.blocked_until)

    def _link_category(self, connection_id: str, name: str, category_id: str, origin: str) -> None:
        log.info(
            "matters of %s are tracked in Xero category %s (%s)",
            connection_id,
            category_id,
            origin,
            extra={"tenant_id": self.tenant_id},
        )
        run_in_transaction(
            self.d.db,
            lambda uow: uow.matters.add_category(
                TrackingCategoryLinkRow(
                    connection_id=connection_id,
                    category_name=name,
                    tracking_category_id=category_id,
                    create_us=now_us(),
                    origin=origin,
                )
            ),
        )

    def _link_option(
        self,
        connection_id: str,
        category: dom.XeroCategory,
        action_id: int,
        option: dom.XeroOption,
        link: MatterOptionLinkRow | None,
        origin: str,
    ) -> None:
        def write(uow: UnitOfWork) -> None:
            now = now_us()
            if link is not None:
                uow.matters.set_option_state(connection_id, action_id, dom.OptionState.ACTIVE, now)
                return
            uow.matters.add_option(
                MatterOptionLinkRow(
                    connection_id=connection_id,
                    action_id=action_id,
                    tracking_category_id=category.category_id,
                    tracking_option_id=option.option_id,
                    name=option.name,
                    state=dom.OptionState.ACTIVE,
                    origin=origin,
                    create_us=now,
                    update_us=now,
                )
            )

        log.info(
            "matter %s is Xero tracking option %s (%s)",
            action_id,
            option.option_id,
            origin if link is None else "reactivated",
            extra={"tenant_id": self.tenant_id},
        )
        run_in_transaction(self.d.db, write)


def set_status(
    caller: XeroCaller, creds: Credentials, category_id: str, option_id: str, status: str, blocked_until: float = 0.0
) -> None:
    """Archives an option or makes it ACTIVE again: POST TrackingCategories/{id}/Options/{id} with
    the TrackingOption's Status (Xero's OpenAPI, updateTrackingOptions: ACTIVE | ARCHIVED |
    DELETED; "Update the status of tracking categories and options", Xero's tracking categories
    page). The body depends only on the option and the status, so a quick retry is the same
    request (Idempotency-Key)."""
    answer = caller.call(creds, "POST", f"{CATEGORIES}/{category_id}/Options/{option_id}", body={"Status": status})
    trouble = call_trouble(answer, f"setting tracking option {option_id} {status}", blocked_until)
    if trouble is not None:
        raise trouble
    changed = next((o for o in dom.options_of(answer.body) if o.option_id == option_id), None)
    if changed is not None and changed.status != status:
        raise Trouble(Reason.XERO_ANSWER_UNREADABLE, f"Xero left tracking option {option_id} {changed.status}")
