"""Every field comment of the mapper's request messages, of MappingContext and of the messages
nested in them says whether the field is required, and a running mapper agrees.

The walk: against a mapper on loopback, for each RPC a table of valid requests (MapTransaction for
every sample kind). Each field a valid request sets, in the request and in the mapper messages it
carries (its context, the first chart account, the first item of a batch), is cleared in turn and
the request sent. A batch or stream is judged by its first item refused, if any. The comment claims:
  "Required"                          the mapper refuses the request without it: INVALID_ARGUMENT
                                      with a field violation naming it;
  "Required (FAILED_PRECONDITION T naming ...)"   refused FAILED_PRECONDITION with a violation of
                                      type T whose subject is the field;
  "Required unless ..."               as "Required" where the condition does not hold (the
                                      enclosing batch or stream sets context / every item sets its own);
  "Required for ... (FAILED_PRECONDITION T ...)"   needed only for what a transaction uses: without
                                      it the request is answered, or refused FAILED_PRECONDITION
                                      with violations of type T only, and the walk sees it refused;
  "Optional"                          the request without it is answered;
  "Optional, ... extended profile only (FAILED_PRECONDITION T naming P otherwise)"   an option: with
                                      it set, clearing the context's profile is answered, or refused
                                      FAILED_PRECONDITION with violations (T, P) of such options only,
                                      and the walk sees each refused so.
Paths are the mapper's: inside a batch or stream they start at the item, as its errors do."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_common.errors import ErrorCode
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

from tests.contract.proto_comments import field_comments

PACKAGE = "xerolink.mapper.v1"
SERVICE = mapper_pb2.DESCRIPTOR.services_by_name["MapperService"]
REQUIRED = re.compile(r"\bRequired\b")
OPTIONAL = re.compile(r"\bOptional\b")
USES = re.compile(r"\bRequired for\b")
PRECONDITION = re.compile(r"\bFAILED_PRECONDITION (\w+)")
EXTENDED_ONLY = re.compile(r"\bextended profile only \(FAILED_PRECONDITION (\w+) naming ([\w.\[\]]+) otherwise\)")
UNLESS_CARRIER = "Required unless the batch or stream message carrying this request sets its context"
UNLESS_EVERY_ITEM = "Required unless every request sets its own context"
# Sample kinds whose batch and stream forms are walked too (the unary walk takes every kind).
BATCH_KINDS = ("client_bill", "client_bill_payment", "supplier_invoice")
# Sample kinds walked again with the extended profile's options on (_options).
OPTION_KINDS = ("client_bill", "general_journal", "invoice_paid_from_trust")


@pytest.fixture(scope="module")
def comments(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    return field_comments(PACKAGE, tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def stub(mapper_target: str) -> Iterator[mapper_grpc.MapperServiceStub]:
    with grpc.insecure_channel(mapper_target) as channel:
        yield mapper_grpc.MapperServiceStub(channel)


@dataclass(frozen=True)
class Answer:
    """What the mapper said to a request (for a batch or stream: to its first item refused)."""

    code: ErrorCode | None  # None: answered, a decision or an empty result
    fields: tuple[str, ...] = ()
    preconditions: tuple[tuple[str, str], ...] = ()  # (type, subject)


def _item_answer(results: list[mapper_pb2.MapResult]) -> Answer:
    for result in results:
        if result.HasField("error"):
            error = result.error
            return Answer(
                ErrorCode(error.code),
                tuple(v.field for v in error.field_violations),
                tuple((v.type, v.subject) for v in result.precondition_violations),
            )
    return Answer(None)


def ask(stub: mapper_grpc.MapperServiceStub, rpc: str, request: Message) -> Answer:
    try:
        if rpc == "BatchMapTransactions":
            return _item_answer(list(stub.BatchMapTransactions(request, timeout=30).results))
        if rpc == "StreamMapTransactions":
            (only,) = list(stub.StreamMapTransactions(iter([request]), timeout=30))
            return _item_answer(list(only.results))
        getattr(stub, rpc)(request, timeout=30)
    except grpc.RpcError as err:
        refusal = from_rpc_error(err)
        return Answer(
            refusal.code,
            tuple(v.field for v in refusal.field_violations),
            tuple((v.type, v.subject) for v in refusal.precondition_violations),
        )
    return Answer(None)


@dataclass(frozen=True)
class Claim:
    required: bool
    uses: bool = False  # required only for what the transaction uses
    precondition: str = ""  # the violation type of a FAILED_PRECONDITION refusal; "" for INVALID_ARGUMENT


def claim(comment: str, holder: Message, request: Message) -> Claim | None:
    """What the comment says of the field in `holder`, part of `request`; None: neither."""
    if not REQUIRED.search(comment):
        return Claim(required=False) if OPTIONAL.search(comment) else None
    found = PRECONDITION.search(comment)
    precondition = found.group(1) if found else ""
    if USES.search(comment):
        return Claim(required=True, uses=True, precondition=precondition)
    if comment.startswith(UNLESS_CARRIER):
        carried = holder is not request and request.HasField("context")
        return Claim(required=not carried, precondition=precondition)
    if comment.startswith(UNLESS_EVERY_ITEM):
        assert isinstance(holder, mapper_pb2.BatchMapTransactionsRequest | mapper_pb2.StreamMapTransactionsRequest)
        every = all(item.HasField("context") for item in holder.requests)
        return Claim(required=not every, precondition=precondition)
    return Claim(required=True, precondition=precondition)


def names_field(answer: Answer, path: str, precondition: str) -> bool:
    if precondition:
        return answer.code == ErrorCode.FAILED_PRECONDITION and (precondition, path) in answer.preconditions
    return answer.code == ErrorCode.INVALID_ARGUMENT and any(
        f == path or f.startswith((f"{path}.", f"{path}[")) for f in answer.fields
    )


def only_preconditions_of(answer: Answer, precondition: str) -> bool:
    kinds = {t for t, _ in answer.preconditions}
    return answer.code == ErrorCode.FAILED_PRECONDITION and not answer.fields and kinds == {precondition}


def _is_set(message: Message, field: str) -> bool:
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    if descriptor.is_repeated:
        return len(getattr(message, field)) > 0
    if descriptor.message_type is not None:
        return message.HasField(field)
    return bool(getattr(message, field))


Holder = Callable[[Message], Message]


def _nested(field_name: str, repeated: bool) -> Holder:
    if repeated:
        return lambda m: getattr(m, field_name)[0]
    return lambda m: getattr(m, field_name)


def _then(outer: Holder, inner: Holder) -> Holder:
    return lambda m: inner(outer(m))


def _mapper_messages(descriptor: Descriptor | Any) -> Iterator[tuple[str, Descriptor]]:
    for field in descriptor.fields:
        nested = field.message_type
        if nested is not None and nested.file.package == PACKAGE and not nested.GetOptions().map_entry:
            yield field.name, nested


def holders(message: Message, prefix: str = "") -> Iterator[tuple[str, Holder]]:
    """(path prefix, holder) of the message and of every mapper message it carries; the first of a
    repeated field. An item of a batch (`requests`) starts its paths afresh, as its errors do."""
    yield prefix, lambda m: m
    for name, _ in _mapper_messages(message.DESCRIPTOR):
        repeated = message.DESCRIPTOR.fields_by_name[name].is_repeated
        if not _is_set(message, name):
            continue
        inner = "" if name == "requests" else f"{prefix}{name}[0]." if repeated else f"{prefix}{name}."
        step = _nested(name, repeated)
        for path, holder in holders(step(message), inner):
            yield path, _then(step, holder)


def walked_messages() -> set[str]:
    """Every request message of the service and every mapper message inside one."""
    found: set[str] = set()
    pending = [method.input_type for method in SERVICE.methods]
    while pending:
        descriptor = pending.pop()
        if descriptor.name not in found:
            found.add(descriptor.name)
            pending.extend(nested for _, nested in _mapper_messages(descriptor))
    return found


def _context() -> mapper_pb2.MappingContext:
    context = samples.demo_context()
    # Extended: every kind the matrix can post is mapped, so the allocation and maps are used.
    context.profile = mapper_pb2.POLICY_PROFILE_EXTENDED
    context.chart[0].tax_type = "BASEXCLUDED"  # every field of the walked chart account is set
    context.chart[0].account_class = "ASSET"
    # The Australian rates the demo's maps name, first one with every field set.
    types = {*context.tax_code_map.values(), *context.purchase_tax_code_map.values(), "EXEMPTOUTPUT"}
    context.tax_rates.extend(
        mapper_pb2.TaxRate(
            tax_type=t,
            name=t.title(),
            status="ACTIVE",
            effective_rate="10.0000",
            account_classes=["ASSET", "EQUITY", "EXPENSE", "LIABILITY", "REVENUE"],
        )
        for t in sorted(types)
    )
    return context


def _flagged() -> mapper_pb2.MappingContext:
    """The context with every flag set: the answer is a decision (perhaps a refusal), not an error."""
    context = _context()
    context.multi_currency_database = True
    context.general_retainers_configured = True
    context.pre_integration_backfill = True
    return context


def _options() -> mapper_pb2.MappingContext:
    """The context with the extended profile's options on: reports by matter, an office organisation."""
    context = _context()
    context.matter_tracking.enabled = True
    context.matter_tracking.category_name = "Matter"
    context.ledgers = mapper_pb2.ORGANISATION_LEDGERS_OFFICE
    return context


def extended_only(message: Message, comments: dict[tuple[str, str], str]) -> dict[tuple[str, str], tuple[str, str]]:
    """The options `message` sets that only the extended profile offers: (type, subject) of the refusal
    their comment promises without that profile -> the field."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        found = EXTENDED_ONLY.search(comments.get((message.DESCRIPTOR.name, field.name), ""))
        if found and _is_set(message, field.name):
            out[(found.group(1), found.group(2))] = (message.DESCRIPTOR.name, field.name)
    return out


def valid_requests() -> Iterator[tuple[str, Message]]:
    context = _context()
    sampled = samples.sample_transactions(1000)
    for transaction in sampled.values():
        yield "MapTransaction", mapper_pb2.MapTransactionRequest(transaction=transaction, context=context)
    bill = sampled["client_bill"]
    yield "MapTransaction", mapper_pb2.MapTransactionRequest(transaction=bill, context=_flagged())
    for kind in OPTION_KINDS:
        yield "MapTransaction", mapper_pb2.MapTransactionRequest(transaction=sampled[kind], context=_options())
    for kind in BATCH_KINDS:
        own = mapper_pb2.MapTransactionRequest(transaction=sampled[kind], context=context)
        bare = mapper_pb2.MapTransactionRequest(transaction=sampled[kind])
        # The batch's context serves the second item only: the first brings its own.
        yield "BatchMapTransactions", mapper_pb2.BatchMapTransactionsRequest(requests=[own, bare], context=context)
        yield "BatchMapTransactions", mapper_pb2.BatchMapTransactionsRequest(requests=[bare], context=context)
        yield "StreamMapTransactions", mapper_pb2.StreamMapTransactionsRequest(requests=[bare], context=context)
        yield "StreamMapTransactions", mapper_pb2.StreamMapTransactionsRequest(requests=[own])
    yield "ListSupportMatrix", mapper_pb2.ListSupportMatrixRequest(profile=mapper_pb2.POLICY_PROFILE_EXTENDED)


def test_every_mapper_request_comment_matches_the_validation(
    stub: mapper_grpc.MapperServiceStub, comments: dict[tuple[str, str], str]
) -> None:
    disagreements: list[str] = []
    cleared_fields: set[tuple[str, str]] = set()
    refused_uses: set[tuple[str, str]] = set()
    refused_options: set[tuple[str, str]] = set()
    walked: set[str] = set()
    for rpc, request in valid_requests():
        walked.add(rpc)
        baseline = ask(stub, rpc, request)
        if baseline.code is not None:
            disagreements.append(f"{rpc}: the valid request is refused: {baseline}")
            continue
        for prefix, holder in holders(request):
            message = holder(request)
            for field in message.DESCRIPTOR.fields:
                key = (message.DESCRIPTOR.name, field.name)
                path = f"{prefix}{field.name}"
                said = claim(comments.get(key, ""), message, request)
                if said is None:
                    disagreements.append(f"{rpc}: {key[0]}.{field.name} says neither Required nor Optional")
                    continue
                if not _is_set(message, field.name):
                    if said.required and not said.uses:
                        disagreements.append(f"{rpc}: the valid request leaves required {path} unset")
                    continue
                cleared = type(request)()
                cleared.CopyFrom(request)
                holder(cleared).ClearField(field.name)
                cleared_fields.add(key)
                answer = ask(stub, rpc, cleared)
                options = extended_only(message, comments) if field.name == "profile" else {}
                if options:
                    # Without the extended profile its options are refused, each as its comment says.
                    if answer.code is not None:
                        if not (
                            answer.code == ErrorCode.FAILED_PRECONDITION
                            and not answer.fields
                            and set(answer.preconditions) <= set(options)
                        ):
                            disagreements.append(f"{rpc}: without {path} the mapper answers {answer}")
                        refused_options.update(options[v] for v in answer.preconditions if v in options)
                    continue
                if said.uses:
                    if answer.code is not None:
                        refused_uses.add(key)
                        if not only_preconditions_of(answer, said.precondition):
                            disagreements.append(f"{rpc}: without {path} the mapper answers {answer}")
                    continue
                if said.required and not names_field(answer, path, said.precondition):
                    how = f"FAILED_PRECONDITION {said.precondition}" if said.precondition else "INVALID_ARGUMENT"
                    disagreements.append(f"{rpc}: {path} says required ({how}); without it the mapper answers {answer}")
                if not said.required and answer.code is not None:
                    disagreements.append(f"{rpc}: {path} says optional; without it the mapper answers {answer}")
    assert not disagreements, "\n".join(disagreements)
    assert walked == {m.name for m in SERVICE.methods}
    every = {(m, f) for (m, f) in comments if m in walked_messages()}
    assert every - cleared_fields == set(), f"fields the walk never cleared: {sorted(every - cleared_fields)}"
    uses = {key for key, text in comments.items() if key in every and USES.search(text)}
    assert uses - refused_uses == set(), f"'Required for' fields never needed in the walk: {uses - refused_uses}"
    offered = {key for key, text in comments.items() if key in every and EXTENDED_ONLY.search(text)}
    assert offered, "the walk sees no extended-only option: is EXTENDED_ONLY still the comments' wording?"
    never = offered - refused_options
    assert never == set(), f"options never refused without the extended profile: {never}"


def test_claims_read_conditions_from_the_request() -> None:
    item = mapper_pb2.MapTransactionRequest()
    batch = mapper_pb2.BatchMapTransactionsRequest(requests=[item], context=mapper_pb2.MappingContext())
    carrier = f"{UNLESS_CARRIER}: the connection's context."
    assert claim(carrier, batch.requests[0], batch) == Claim(required=False)
    assert claim(carrier, item, item) == Claim(required=True)
    every = f"{UNLESS_EVERY_ITEM}: ..."
    assert claim(every, batch, batch) == Claim(required=True)
    assert claim(every, mapper_pb2.BatchMapTransactionsRequest(), batch) == Claim(required=False)
    ready = "Required (FAILED_PRECONDITION CONNECTION_NOT_READY naming context.connected_at): when ..."
    assert claim(ready, item, item) == Claim(required=True, precondition="CONNECTION_NOT_READY")
    uses = "Required for the functions a transaction posts to (FAILED_PRECONDITION ACCOUNT_ALLOCATION_MISSING ...)"
    assert claim(uses, item, item) == Claim(required=True, uses=True, precondition="ACCOUNT_ALLOCATION_MISSING")
    assert claim("Optional: UNSPECIFIED is ACTIONSTEP_COMPATIBLE.", item, item) == Claim(required=False)
    assert claim("The account's name.", item, item) is None
