"""Whatever a caller sends, the mapper answers with a result or a clear error: never a crash.
Well-formed requests of every kind are mutated field by field through the protobuf descriptors."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.type.v1 import date_pb2
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper import samples
from xerolink_mapper.adapters.mapping_calls import map_request

SAMPLES = samples.sample_transactions()
INTS = st.one_of(
    st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 10**13, 99]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
STRINGS = st.one_of(
    st.sampled_from(
        ["", "-1", "1e400", "NaN", "Infinity", "0.00001", "1,5", "GST", "090", "499", "AUD", "usd", "x" * 5000]
    ),
    st.text(max_size=20),
)


def _fields(message: Message, prefix: str = "") -> list[tuple[Message, Any, str]]:
    """Every field reachable from the set parts of `message` (and unset fields of set messages)."""
    out: list[tuple[Message, Any, str]] = []
    field: Any
    for field in message.DESCRIPTOR.fields:
        out.append((message, field, prefix + field.name))
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            if field.message_type.GetOptions().map_entry:
                continue
            if message.HasField(field.name):
                out.extend(_fields(getattr(message, field.name), prefix + field.name + "."))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            for i, item in enumerate(getattr(message, field.name)):
                out.extend(_fields(item, f"{prefix}{field.name}[{i}]."))
    return out


def _mutate(draw: st.DrawFn, message: Message, field: Any) -> None:
    name = field.name
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            container: Any = getattr(message, name)
            container.clear() if draw(st.booleans()) else container.update({draw(STRINGS): draw(STRINGS)})
        elif field.is_repeated:
            repeated: Any = getattr(message, name)
            if draw(st.booleans()) and len(repeated):
                del repeated[draw(st.integers(0, len(repeated) - 1))]
            else:
                repeated.add()
        elif field.message_type is date_pb2.Date.DESCRIPTOR and draw(st.booleans()):
            getattr(message, name).CopyFrom(
                date_pb2.Date(
                    year=draw(st.integers(-5, 10000)), month=draw(st.integers(-1, 14)), day=draw(st.integers(-1, 40))
                )
            )
        elif draw(st.booleans()):
            message.ClearField(name)
        else:
            getattr(message, name).SetInParent()
        return
    if field.is_repeated:
        getattr(message, name).append(draw(STRINGS if field.type == FieldDescriptor.TYPE_STRING else INTS))
        return
    if field.type == FieldDescriptor.TYPE_STRING:
        setattr(message, name, draw(STRINGS))
    elif field.type == FieldDescriptor.TYPE_BOOL:
        setattr(message, name, draw(st.booleans()))
    elif field.type == FieldDescriptor.TYPE_ENUM:
        setattr(message, name, draw(st.integers(-3, 40)))
    elif field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        setattr(message, name, draw(st.integers(-(2**31), 2**31 - 1)))
    else:
        setattr(message, name, draw(INTS))


@st.composite
def mutated_requests(draw: st.DrawFn) -> mapper_pb2.MapTransactionRequest:
    name = draw(st.sampled_from(sorted(SAMPLES)))
    profile = draw(st.sampled_from([0, 1, 2]))
    request = mapper_pb2.MapTransactionRequest(
        transaction=SAMPLES[name], context=samples.demo_context(profile, with_chart=draw(st.booleans()))
    )
    for _ in range(draw(st.integers(1, 4))):
        message, field, _path = draw(st.sampled_from(_fields(request)))
        _mutate(draw, message, field)
    return request


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_requests())
def test_any_request_gets_a_result_or_a_clear_error(request: mapper_pb2.MapTransactionRequest) -> None:
    try:
        response = map_request(request)
    except XerolinkError as err:
        assert err.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.FAILED_PRECONDITION)
        assert err.field_violations or err.precondition_violations
        assert err.message
        return
    if not response.decision.supported:
        assert not response.operations
    else:
        assert response.operations


def test_an_impossible_calendar_date_is_invalid_argument_naming_the_field() -> None:
    tx = SAMPLES["client_bill"]
    bad = type(tx)()
    bad.CopyFrom(tx)
    bad.header.transaction_date.CopyFrom(date_pb2.Date(year=2026, month=2, day=30))
    try:
        map_request(mapper_pb2.MapTransactionRequest(transaction=bad, context=samples.demo_context()))
    except XerolinkError as err:
        assert [v.field for v in err.field_violations] == ["transaction.header.transaction_date"]
        assert "2026-02-30" in err.field_violations[0].description
    else:
        raise AssertionError("an impossible date was accepted")


def test_a_transaction_without_a_kind_is_invalid_argument() -> None:
    tx = type(SAMPLES["client_bill"])(header=SAMPLES["client_bill"].header)
    try:
        map_request(mapper_pb2.MapTransactionRequest(transaction=tx, context=samples.demo_context()))
    except XerolinkError as err:
        assert [v.field for v in err.field_violations] == ["transaction"]
    else:
        raise AssertionError("a transaction without a kind was accepted")
