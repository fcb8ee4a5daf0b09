"""Participants become Xero contacts once, each its own: found by ContactNumber (a job's
participants in one look-up), adopted, or created (under a distinguishable name when another
contact holds the display name)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass

from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.tables import ContactLinkRow
from xerolink_poster.adapters.xero_client import Credentials, Uncertain, url_length
from xerolink_poster.domain.retry import chunks
from xerolink_poster.service_layer import tracing
from xerolink_poster.service_layer.dispatch import answers
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.lookups import LookupFailed, check_lookup
from xerolink_poster.service_layer.dispatch.results import Results, Retry
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.where_groups import OR, or_groups
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)

# Xero's refusal of a contact whose name another active contact holds: "The contact name X is
# already assigned to another contact. The contact name must be unique across all active
# contacts." (reported from Xero's API in Pinelab-studio/pinelab-vendure-plugins#505).
NAME_TAKEN = "is already assigned to another contact"
CONTACT_NAME_MAX = 255  # Contact.Name maxLength in Xero's OpenAPI description


def distinguishable_name(name: str, number: str) -> str:
    """The name a participant's contact is created under when another contact holds its display
    name: the name followed by the participant's contact number, "Jane Smith (AS-777)"."""
    suffix = f" ({number})"
    return name[: CONTACT_NAME_MAX - len(suffix)].rstrip() + suffix


class Contacts:
    def __init__(
        self, shared: Shared, settings: DispatcherSettings, tenant_id: str, gate: Gate, results: Results
    ) -> None:
        self.d = shared
        self.settings = settings
        self.tenant_id = tenant_id
        self.gate = gate
        self.results = results
        # One job of the tenant at a time finds or creates contacts, so two never create one twice.
        self.lock = threading.Lock()

    def ensure(self, works: list[Work]) -> None:
        """Participants become Xero contacts once, each its own. A participant's contact is found
        in Xero only by ContactNumber "AS-<participant id>" (set by xerolink when it creates the
        contact, or by the firm on a contact entered before connecting, to adopt it); never by
        name, so two participants never share a contact. When another contact holds the display
        name (Xero keeps names unique among active contacts), the contact is created under the
        name followed by its number. Every call is in the traces of the postings that need it."""
        by_participant: dict[tuple[str, int], list[Work]] = defaultdict(list)
        for w in works:
            assert w.contact is not None
            by_participant[(w.connection.connection_id, w.contact.participant_id)].append(w)
        with UnitOfWork(self.d.db, write=False) as uow:
            # Linked since the job prepared (another job of the tenant, under the lock).
            for cid, keys in _by_connection(by_participant).items():
                for pid, contact_id in uow.contacts.contacts_of(cid, [pid for _, pid in keys]).items():
                    for w in by_participant[(cid, pid)]:
                        w.contact_id = contact_id
        pending = {key: members for key, members in by_participant.items() if not members[0].contact_id}
        if not pending:
            return
        traced = [(w.row.trace_context, w.link) for members in pending.values() for w in members]
        made: list[_Made] = []
        try:
            with tracing.xero_call("Contacts", self.tenant_id, traced):
                self._find_or_create(pending, made)
        finally:
            # Linked together, in one transaction: one a participant was most of what a job of new
            # clients cost. A contact Xero made is linked even when a later step failed.
            self._link(made)

    def _find_or_create(self, pending: dict[tuple[str, int], list[Work]], made: list[_Made]) -> None:
        """Looks the participants up by number, a URL's worth a call, then creates the contacts
        none carries, a batch a call; `made` gets each contact found or created."""
        to_create: dict[tuple[str, int], list[Work]] = {}
        for keys in _by_connection(pending).values():
            creds = self.gate.credentials(pending[keys[0]][0].connection)
            for group in self._lookups(creds, keys, pending):
                numbers = [_number(pending[key]) for key in group]
                members = [w for key in group for w in pending[key]]
                try:
                    found = self._find(creds, numbers)
                except Uncertain as exc:
                    self.results.retry(
                        members, uncertain=False, reason=Reason.XERO_CONTACT_LOOKUP_FAILED, message=str(exc)
                    )
                    continue
                except LookupFailed as exc:
                    failed = Retry.after_lookup(
                        members,
                        False,
                        Reason.XERO_CONTACT_LOOKUP_FAILED,
                        str(exc),
                        exc.rate_limited,
                        self.gate.blocked_until,
                    )
                    self.results.retry_together([failed])
                    continue
                for key, number in zip(group, numbers, strict=True):
                    self._found(key, pending[key], found.get(number, []), to_create, made)
        for keys in _by_connection(to_create).values():
            for batch in chunks(keys, self.settings.batch_size):
                self._create([to_create[k] for k in batch], False, made)

    def _found(
        self,
        key: tuple[str, int],
        members: list[Work],
        found: list[str],
        to_create: dict[tuple[str, int], list[Work]],
        made: list[_Made],
    ) -> None:
        """A participant after its look-up: created when no contact carries its number, adopted
        when one does, stopped when several do."""
        if not found:
            to_create[key] = members
        elif len(found) > 1:
            self.results.reject(
                members,
                [
                    f"{len(found)} Xero contacts carry ContactNumber {_number(members)}: keep it on the one that "
                    "is this participant's (clear it on the others), then post again"
                ],
            )
        else:
            self._adopt(members, found[0], made)

    def _lookups(
        self, creds: Credentials, keys: list[tuple[str, int]], pending: dict[tuple[str, int], list[Work]]
    ) -> list[list[tuple[str, int]]]:
        """The participants in groups of at most a batch whose numbers fill one look-up's URL no
        further than Xero serves (a participant without a number is not asked for: none carries it)."""
        clauses = [_clause(_number(pending[key])) for key in keys]
        fixed = url_length(creds.base_url, "Contacts", "where")
        return [[keys[p] for p in group] for group in or_groups(fixed, clauses, self.settings.batch_size)]

    def _find(self, creds: Credentials, numbers: list[str]) -> dict[str, list[str]]:
        """The ids of the Xero contacts whose ContactNumber is exactly each of `numbers`, in one GET."""
        clauses = [_clause(n) for n in numbers if n]
        if not clauses:
            return {}
        answer = self.gate.call(creds, "GET", "Contacts", params={"where": OR.join(clauses)})
        wanted = {n for n in numbers if n}
        found: dict[str, list[str]] = defaultdict(list)
        for item in check_lookup(answer, "Contacts"):
            contact_id = item.get("ContactID")
            if not isinstance(contact_id, str) or not contact_id:
                # Xero names every contact it lists: one without its id was garbled on the way, and
                # could be the participant's own (read as "none", it was created a second time).
                raise LookupFailed("Xero's answer to a look-up listed a contact without its ContactID", False)
            if item.get("ContactNumber") in wanted:
                found[str(item["ContactNumber"])].append(contact_id)
        return found

    def _adopt(self, members: list[Work], contact_id: str, made: list[_Made]) -> None:
        """The contact that carries this participant's number, unless another participant's
        link already holds it (its number was changed in Xero since)."""
        contact = _contact(members)
        connection_id = members[0].connection.connection_id
        # This job's adoptions are not linked yet: the firm renumbered a contact between two look-ups.
        holder = next(
            (
                m.contact.participant_id
                for m in made
                if m.contact_id.lower() == contact_id.lower() and m.members[0].connection.connection_id == connection_id
            ),
            None,
        )
        if holder is None:
            with UnitOfWork(self.d.db, write=False) as uow:
                holder = uow.contacts.participant_of_contact(connection_id, contact_id)
        if holder is not None and holder != contact.participant_id:
            self.results.reject(
                members,
                [
                    f"the Xero contact with ContactNumber {contact.contact_number} is participant {holder}'s "
                    "contact: give it back its own number in Xero, then post again"
                ],
            )
            return
        made.append(_Made(members, contact_id, "contact_number"))

    def _create(self, groups: list[list[Work]], renamed: bool, made: list[_Made]) -> None:
        contacts = [g[0].contact for g in groups]
        elements = [payloads.contact_element(c) for c in contacts if c is not None]
        if renamed:
            for element in elements:
                element["Name"] = distinguishable_name(element["Name"], element["ContactNumber"])
        all_works = [w for g in groups for w in g]
        creds = self.gate.credentials(groups[0][0].connection)
        names = [f"contact/{g[0].connection.connection_id}/{c.participant_id}" for g in groups if (c := g[0].contact)]
        try:
            answer = self.gate.call(
                creds,
                "PUT",
                "Contacts",
                params={"summarizeErrors": "false"},
                body={"Contacts": elements},
                names=names,
            )
        except Uncertain as exc:
            # Nothing is lost: the next attempt finds the contact by its number before creating.
            self.results.retry(all_works, uncertain=False, reason=Reason.XERO_NO_ANSWER, message=f"contacts: {exc}")
            return
        read = answers.read_elements(answer, "Contacts", len(groups))
        if read.call:
            # Rate limited, unavailable or unauthorised: nothing of the call is known to be done;
            # the next attempt finds any contact it did create by its number first.
            limited = read.call == answers.RATE_LIMITED
            self.results.retry(
                all_works,
                uncertain=False,
                reason=Reason.XERO_CONTACTS_FAILED,
                message=answers.refusal_message(answer),
                at=self.gate.blocked_until if limited else None,
                count=not limited,
            )
            return
        clashes: list[list[Work]] = []
        unknown: list[Work] = []
        for members, outcome in zip(groups, read.elements, strict=True):
            contact_id = str((outcome.answered or {}).get("ContactID") or "")
            if outcome.refused is not None:
                if not renamed and any(NAME_TAKEN in e for e in outcome.refused):
                    clashes.append(members)
                else:
                    self.results.reject(members, ["; ".join(outcome.refused)])
            elif contact_id:
                made.append(_Made(members, contact_id, "created_renamed" if renamed else "created"))
            else:
                # Created or not (an answer that names no contact, or a batch refused whole):
                # the next attempt finds each contact by its number before creating it.
                unknown += members
        if unknown:
            self.results.retry(
                unknown,
                uncertain=False,
                reason=read.reason or Reason.XERO_ANSWER_UNREADABLE,
                message=f"contacts: {read.message or 'Xero named no contact'}",
            )
        if clashes:
            self._create(clashes, True, made)

    def _link(self, made: list[_Made]) -> None:
        if not made:
            return
        for m in made:
            log.info(
                "participant %s is Xero contact %s (%s)",
                m.contact.participant_id,
                m.contact_id,
                m.origin,
                extra={"tenant_id": self.tenant_id},
            )

        def write(uow: UnitOfWork) -> dict[tuple[str, int], str]:
            now = now_us()
            return uow.contacts.add_contacts(
                [
                    ContactLinkRow(
                        connection_id=m.members[0].connection.connection_id,
                        participant_id=m.contact.participant_id,
                        contact_id=m.contact_id,
                        contact_number=m.contact.contact_number,
                        create_us=now,
                        origin=m.origin,
                    )
                    for m in made
                ]
            )

        linked = run_in_transaction(self.d.db, write)
        for m in made:
            # The participant's link as stored: one linked meanwhile keeps its contact, and its
            # bills go there, never to the one just made.
            contact_id = linked[(m.members[0].connection.connection_id, m.contact.participant_id)]
            for w in m.members:
                w.contact_id = contact_id


@dataclass(frozen=True)
class _Made:
    """A participant's contact found or created, to be linked."""

    members: list[Work]
    contact_id: str
    origin: str  # contact_link.origin: created, created_renamed, contact_number

    @property
    def contact(self) -> xero_pb2.Contact:
        return _contact(self.members)


def _contact(members: list[Work]) -> xero_pb2.Contact:
    """The participant's contact, as its postings carry it (each has one: ensure takes no other)."""
    contact = members[0].contact
    assert contact is not None
    return contact


def _number(members: list[Work]) -> str:
    return _contact(members).contact_number


def _clause(number: str) -> str:
    return f'ContactNumber=="{number.replace(chr(34), "")}"'


def _by_connection(groups: dict[tuple[str, int], list[Work]]) -> dict[str, list[tuple[str, int]]]:
    by_connection: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key in groups:
        by_connection[key[0]].append(key)
    return by_connection
