"""MapperService over a real gRPC server on loopback: unary, batch, stream and the matrix."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator

import grpc
import pytest
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples
from xerolink_mapper.entrypoints.server import start


@pytest.fixture(scope="module")
def stub() -> Iterator[mapper_grpc.MapperServiceStub]:
    running = start("127.0.0.1:0", max_workers=4)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield mapper_grpc.MapperServiceStub(channel)
    finally:
        channel.close()
        running.stop(0)


def request(
    tx: object, profile: int = mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE
) -> mapper_pb2.MapTransactionRequest:
    return mapper_pb2.MapTransactionRequest(transaction=tx, context=samples.demo_context(profile))  # type: ignore[arg-type]


def test_client_bill_maps_to_one_authorised_accrec_invoice_summed_per_account_and_tax_type(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    tx = samples.client_bill(1001)
    response = stub.MapTransaction(request(tx))

    assert response.decision.supported
    assert response.decision.reason_code == "SUPPORTED"
    assert response.decision.profile == mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE
    assert response.record.id == 1001
    (op,) = response.operations
    invoice = op.invoice
    assert invoice.type == xero_pb2.INVOICE_TYPE_ACCREC
    assert invoice.status == xero_pb2.DOCUMENT_STATUS_AUTHORISED
    assert invoice.invoice_number == "INV-1001"
    expected: dict[tuple[str, str], list[int]] = {}
    for item in tx.client_bill.lines:
        tax_type = samples.DEMO_SALES_TAX[item.tax_code]
        sums = expected.setdefault((item.gl_account, tax_type), [0, 0])
        sums[0] += item.amount.units
        sums[1] += item.tax.units
    got = {(i.account_code, i.tax_type): [i.line_amount.units, i.tax_amount.units] for i in invoice.line_items}
    assert got == expected
    assert invoice.total.units == tx.client_bill.totals.inclusive.units == response.total.units
    assert invoice.total_tax.units == tx.client_bill.totals.tax.units


def test_a_bill_whose_lines_do_not_add_up_is_invalid_argument_naming_the_total(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    tx = samples.client_bill(1002)
    tx.client_bill.totals.inclusive.units += 1
    with pytest.raises(grpc.RpcError) as caught:
        stub.MapTransaction(request(tx))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(caught.value)
    assert [v.field for v in err.field_violations] == ["transaction.client_bill.totals.inclusive"]


def test_an_archived_account_is_failed_precondition_naming_the_code(stub: mapper_grpc.MapperServiceStub) -> None:
    tx = samples.client_bill(1003, [samples.line("Old work", "499", "GST", 1000, 100)])
    with pytest.raises(grpc.RpcError) as caught:
        stub.MapTransaction(request(tx))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    err = from_rpc_error(caught.value)
    assert [(v.type, v.subject) for v in err.precondition_violations] == [("ACCOUNT_ARCHIVED", "499")]
    assert "restore it" in err.precondition_violations[0].description


def test_the_profile_is_chosen_per_request_on_the_same_server(stub: mapper_grpc.MapperServiceStub) -> None:
    tx = samples.sample_transactions()["general_journal"]
    compatible = stub.MapTransaction(request(tx, mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE))
    extended = stub.MapTransaction(request(tx, mapper_pb2.POLICY_PROFILE_EXTENDED))
    unset = stub.MapTransaction(request(tx, mapper_pb2.POLICY_PROFILE_UNSPECIFIED))
    assert (compatible.decision.reason_code, len(compatible.operations)) == ("EXTENDED_ONLY", 0)
    assert (extended.decision.reason_code, extended.operations[0].WhichOneof("body")) == ("SUPPORTED", "manual_journal")
    assert unset.decision.profile == mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE


def _mixed_batch() -> list[mapper_pb2.MapTransactionRequest]:
    good = request(samples.client_bill(2001))
    invalid = request(samples.client_bill(2002))
    invalid.transaction.client_bill.lines[0].quantity = "-3"
    unmapped = request(samples.client_bill(2003))
    del unmapped.context.tax_code_map["FRE"]
    unsupported = request(samples.sample_transactions()["purchase_order"])
    return [good, invalid, unmapped, unsupported]


def test_batch_answers_every_item_on_its_own(stub: mapper_grpc.MapperServiceStub) -> None:
    response = stub.BatchMapTransactions(mapper_pb2.BatchMapTransactionsRequest(requests=_mixed_batch()))
    good, invalid, unmapped, unsupported = response.results
    assert [r.index for r in response.results] == [0, 1, 2, 3]
    assert good.response.operations[0].invoice.invoice_number == "INV-2001"
    assert invalid.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in invalid.error.field_violations] == ["transaction.client_bill.lines[0].quantity"]
    assert unmapped.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert [(v.type, v.subject) for v in unmapped.precondition_violations] == [("TAX_CODE_NOT_MAPPED", "FRE")]
    assert unsupported.response.decision.reason_code == "NOT_POSTED_BY_ACTIONSTEP"


def test_stream_keeps_the_order_of_requests_across_messages(stub: mapper_grpc.MapperServiceStub) -> None:
    messages = [
        mapper_pb2.StreamMapTransactionsRequest(
            requests=[request(samples.client_bill(3000 + 10 * m + i)) for i in range(5)]
        )
        for m in range(4)
    ]
    messages.append(mapper_pb2.StreamMapTransactionsRequest(requests=_mixed_batch()))
    responses = list(stub.StreamMapTransactions(iter(messages)))
    assert len(responses) == 5
    for m, response in enumerate(responses[:4]):
        assert [r.index for r in response.results] == list(range(5))
        assert [r.response.record.id for r in response.results] == [3000 + 10 * m + i for i in range(5)]
    assert [r.WhichOneof("outcome") for r in responses[4].results] == ["response", "error", "error", "response"]


def test_list_support_matrix_returns_the_table_for_callers_to_render(stub: mapper_grpc.MapperServiceStub) -> None:
    everything = stub.ListSupportMatrix(mapper_pb2.ListSupportMatrixRequest())
    kinds = {r.kind for r in everything.rows}
    assert len(kinds) == 32 and len(everything.rows) == 64
    by_key = {(r.kind, r.profile): r for r in everything.rows}
    bill = by_key[(1, mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE)]
    assert (bill.label, bill.supported, bill.reason_code, bill.xero_representation) == (
        "Posting a client bill",
        True,
        "SUPPORTED",
        "Invoice ACCREC, AUTHORISED",
    )
    transfer = {r.profile: r for r in everything.rows if r.label.startswith("Bank to bank")}
    assert transfer[mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE].reason_code == "EXTENDED_ONLY"
    assert transfer[mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE].xero_representation == ""
    assert transfer[mapper_pb2.POLICY_PROFILE_EXTENDED].xero_representation == "BankTransfer"
    assert {c.reason_code for c in everything.conditions} == {
        "PRE_INTEGRATION",
        "OTHER_DIVISION",
        "FOREIGN_CURRENCY",
        "FOREIGN_CURRENCY_NOT_REPRESENTABLE",
        "MULTI_CURRENCY_DATABASE",
        "CASH_ACCOUNTING",
        "GENERAL_RETAINERS_CONFIGURED",
    }

    extended = stub.ListSupportMatrix(mapper_pb2.ListSupportMatrixRequest(profile=mapper_pb2.POLICY_PROFILE_EXTENDED))
    assert {r.profile for r in extended.rows} == {mapper_pb2.POLICY_PROFILE_EXTENDED}
    assert "FOREIGN_CURRENCY" not in {c.reason_code for c in extended.conditions}


def test_list_support_matrix_refuses_an_unknown_profile(stub: mapper_grpc.MapperServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListSupportMatrix(mapper_pb2.ListSupportMatrixRequest(profile=9))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_batch_context_is_sent_once_and_an_item_may_bring_its_own(stub: mapper_grpc.MapperServiceStub) -> None:
    journal = samples.sample_transactions()["general_journal"]
    own = mapper_pb2.MapTransactionRequest(
        transaction=journal, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE)
    )
    shared = mapper_pb2.MapTransactionRequest(transaction=journal)
    response = stub.BatchMapTransactions(
        mapper_pb2.BatchMapTransactionsRequest(
            requests=[shared, own], context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
        )
    )
    assert [r.response.decision.reason_code for r in response.results] == ["SUPPORTED", "EXTENDED_ONLY"]

    broken = samples.demo_context()
    broken.ClearField("connected_at")
    (result,) = stub.BatchMapTransactions(
        mapper_pb2.BatchMapTransactionsRequest(requests=[shared], context=broken)
    ).results
    assert result.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert [v.subject for v in result.precondition_violations] == ["context.connected_at"]


def test_a_request_without_a_context_is_invalid_and_an_empty_one_is_a_connection_not_ready(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.MapTransaction(mapper_pb2.MapTransactionRequest(transaction=samples.client_bill()))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in from_rpc_error(caught.value).field_violations] == ["context"]

    empty = mapper_pb2.MapTransactionRequest(transaction=samples.client_bill(), context=mapper_pb2.MappingContext())
    with pytest.raises(grpc.RpcError) as caught:
        stub.MapTransaction(empty)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    subjects = {v.subject for v in from_rpc_error(caught.value).precondition_violations}
    assert subjects == {"context.connected_at", "context.base_currency_code", "context.accounting_method"}


def _stream_answers(address: str, messages: list[bytes]) -> list[mapper_pb2.StreamMapTransactionsResponse]:
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream("/xerolink.mapper.v1.MapperService/StreamMapTransactions")
        return [mapper_pb2.StreamMapTransactionsResponse.FromString(raw) for raw in call(iter(messages))]


def test_stream_messages_mapped_by_worker_processes_keep_their_order() -> None:
    mapper = start("127.0.0.1:0", max_workers=4, stream_processes=2)
    try:
        context = samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
        kinds = list(samples.sample_transactions(5000).values())
        messages = [
            mapper_pb2.StreamMapTransactionsRequest(
                requests=[mapper_pb2.MapTransactionRequest(transaction=kinds[(m + i) % len(kinds)]) for i in range(7)],
                context=context,
            ).SerializeToString()
            for m in range(30)
        ]
        answers = _stream_answers(f"127.0.0.1:{mapper.port}", messages)
        assert len(answers) == 30
        for m, answer in enumerate(answers):
            expected = [kinds[(m + i) % len(kinds)].header.id for i in range(7)]
            assert [r.response.record.id for r in answer.results] == expected
    finally:
        mapper.stop(0)


@pytest.mark.parametrize("processes", [0, 1])
def test_a_stream_message_that_is_not_a_request_is_invalid_argument(processes: int) -> None:
    mapper = start("127.0.0.1:0", max_workers=2, stream_processes=processes)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            _stream_answers(f"127.0.0.1:{mapper.port}", [b"\xff\xff\xff"])
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        mapper.stop(0)


def test_a_dead_stream_worker_fails_that_stream_as_unavailable_and_the_next_one_works() -> None:
    before = {child.pid for child in multiprocessing.active_children()}
    mapper = start("127.0.0.1:0", max_workers=2, stream_processes=1)
    try:
        message = mapper_pb2.StreamMapTransactionsRequest(
            requests=[mapper_pb2.MapTransactionRequest(transaction=samples.client_bill())],
            context=samples.demo_context(),
        ).SerializeToString()
        (worker,) = [child for child in multiprocessing.active_children() if child.pid not in before]
        os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
        worker.join(timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            _stream_answers(f"127.0.0.1:{mapper.port}", [message])
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        (answer,) = _stream_answers(f"127.0.0.1:{mapper.port}", [message])
        assert answer.results[0].response.decision.supported
    finally:
        mapper.stop(0)


def test_an_invalid_connected_at_is_refused_instead_of_disabling_the_pre_integration_check(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    bad = request(samples.client_bill(1001))
    # Out of range: nanos must be 0..999,999,999. Read as any other instant it would decide
    # whether a bill predates the connection on a guess.
    bad.context.connected_at.nanos = -1
    with pytest.raises(grpc.RpcError) as err:
        stub.MapTransaction(bad, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context.connected_at" in [v.field for v in from_rpc_error(err.value).field_violations]
