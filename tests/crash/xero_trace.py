"""Tracing every object of an emulated Xero organisation back to the Actionstep record that
created it, through the tag the poster puts in a field Xero keeps ("... [AS-CBP-7001] #2": the
Reference, the number of a bill or supplier credit, the narration of a journal, the first line of
an overpayment; see xerolink_poster.adapters.xero_payloads), and
checking the organisation against the registry: one object per record and generation, nothing in
Xero the registry does not know, nothing the registry holds missing from Xero.

Allocations carry no reference in Xero: they are checked by id against the registry's links.
Contacts are checked for duplicate contact numbers ("AS-<participant id>")."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from xero_emulator import EmulatorServer
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.adapters.xero_payloads import kind_code

TAG = re.compile(r"\[AS-(?P<code>[A-Z]+)-(?P<id>\d+)\](?: #(?P<generation>\d+))?")
# Resources whose objects carry the tag.
TAGGED = ("Invoices", "CreditNotes", "Payments", "BankTransactions", "BankTransfers", "ManualJournals", "Overpayments")


def _tag_fields(obj: Mapping[str, object]) -> Iterable[str]:
    """The fields that may carry the tag, as Xero stores the object."""
    for name in ("Reference", "InvoiceNumber", "CreditNoteNumber", "Narration"):
        yield str(obj.get(name) or "")
    lines = obj.get("LineItems")
    if isinstance(lines, list) and lines and isinstance(lines[0], dict):
        yield str(lines[0].get("Description") or "")


GONE = frozenset({"DELETED", "VOIDED"})
Record = tuple[str, int]  # (kind initials, Actionstep id): the tag's identity


@dataclass(frozen=True)
class TracedObject:
    resource: str
    xero_id: str
    record: Record | None  # None: the object carries no tag
    generation: int
    status: str


@dataclass
class XeroSnapshot:
    objects: list[TracedObject]
    allocations: set[str]  # ids of allocations not deleted
    contact_numbers: Counter[str]

    def by_id(self) -> dict[str, TracedObject]:
        return {o.xero_id: o for o in self.objects}


@dataclass(frozen=True)
class Expected:
    """What the registry says about one record: the generation it is at, and the ids of the
    objects its link holds (empty when nothing of it reached Xero)."""

    generation: int
    object_ids: frozenset[str]
    allocation_ids: frozenset[str] = frozenset()
    unlinked: bool = False  # its objects are orphans now: Xero may hold them deleted or voided


@dataclass
class TraceReport:
    problems: list[str] = field(default_factory=list)
    objects: int = 0
    orphans: int = 0
    allocations: int = 0

    def add(self, problem: str) -> None:
        if len(self.problems) < 50:  # enough to diagnose; a broken run would list thousands
            self.problems.append(problem)


def snapshot(emulator: EmulatorServer, tenant_id: str) -> XeroSnapshot:
    org = emulator.state.organisation(tenant_id)
    traced: list[TracedObject] = []
    allocations: set[str] = set()
    with org.lock:
        for resource in TAGGED:
            for xero_id, obj in org.objects[resource].items():
                match = next((m for text in _tag_fields(obj) if (m := TAG.search(text))), None)
                record = (match["code"], int(match["id"])) if match else None
                generation = int(match["generation"] or 1) if match else 0
                traced.append(TracedObject(resource, xero_id, record, generation, str(obj.get("Status", ""))))
                for allocation in obj.get("Allocations") or ():
                    if not allocation.get("IsDeleted"):
                        allocations.add(str(allocation["AllocationID"]))
        numbers = Counter(str(c.get("ContactNumber") or "") for c in org.objects["Contacts"].values())
    numbers.pop("", None)
    return XeroSnapshot(traced, allocations, numbers)


def record_of(link: poster_pb2.Link) -> Record:
    return kind_code(link.record.kind), int(link.record.id)


def expected_from_links(
    links: Iterable[poster_pb2.Link], generations: Mapping[Record, int] | None = None
) -> dict[Record, Expected]:
    """The registry's view; `generations` gives records posted again after an unlink (default 1)."""
    out: dict[Record, Expected] = {}
    for link in links:
        record = record_of(link)
        allocations = frozenset(o.xero_id for o in link.xero_objects if o.type == xero_pb2.OBJECT_TYPE_ALLOCATION)
        others = frozenset(o.xero_id for o in link.xero_objects if o.type != xero_pb2.OBJECT_TYPE_ALLOCATION)
        unlinked = link.state == poster_pb2.LINK_STATE_UNLINKED
        out[record] = Expected((generations or {}).get(record, 1), others, allocations, unlinked)
    return out


def duplicates(xero: XeroSnapshot) -> list[str]:
    """Objects of one resource created twice for one record and generation."""
    groups: dict[tuple[str, Record, int], list[str]] = defaultdict(list)
    for obj in xero.objects:
        if obj.record is not None:
            groups[(obj.resource, obj.record, obj.generation)].append(obj.xero_id)
    return [
        f"duplicate: {len(ids)} {resource} for {record} generation {generation}: {', '.join(ids)}"
        for (resource, record, generation), ids in groups.items()
        if len(ids) > 1
    ]


def check(xero: XeroSnapshot, expected: Mapping[Record, Expected]) -> TraceReport:
    """Xero against the registry: every tagged object belongs to a known record; at the record's
    current generation Xero holds exactly the objects its link holds, one per resource; earlier
    generations are orphans (left in place, never deleted by xerolink); no contact number twice."""
    report = TraceReport(objects=len(xero.objects), allocations=len(xero.allocations))
    for obj in xero.objects:
        if obj.record is None:
            report.add(f"{obj.resource} {obj.xero_id} carries no [AS-...] tag: not posted by xerolink")
            continue
        want = expected.get(obj.record)
        if want is None:
            report.add(f"{obj.resource} {obj.xero_id} is tagged {obj.record}, a record the registry does not hold")
            continue
        if obj.generation > want.generation:
            report.add(f"{obj.resource} {obj.xero_id} of {obj.record} is generation {obj.generation}, ahead of {want}")
        elif obj.generation < want.generation:
            report.orphans += 1
        elif obj.xero_id not in want.object_ids:
            report.add(f"{obj.resource} {obj.xero_id} of {obj.record} gen {obj.generation} is not in its link")
    for duplicate in duplicates(xero):
        report.add(duplicate)
    present = xero.by_id()
    registry_allocations: Counter[str] = Counter()
    for record, want in expected.items():
        for xero_id in want.object_ids:
            if xero_id not in present:
                report.add(f"{record}'s link holds {xero_id}, which Xero does not have")
            elif present[xero_id].status in GONE and not want.unlinked:
                report.add(f"{record}'s link holds {xero_id}, which is {present[xero_id].status} in Xero")
        registry_allocations.update(want.allocation_ids)
    for allocation, times in registry_allocations.items():
        if times > 1:
            report.add(f"allocation {allocation} is held by {times} links")
    for allocation in xero.allocations - set(registry_allocations):
        report.add(f"allocation {allocation} in Xero belongs to no link (a duplicate or a lost answer)")
    for allocation in set(registry_allocations) - xero.allocations:
        report.add(f"allocation {allocation} of the registry is not in Xero")
    for number, times in xero.contact_numbers.items():
        if times > 1:
            report.add(f"contact number {number} is in Xero {times} times")
    return report
