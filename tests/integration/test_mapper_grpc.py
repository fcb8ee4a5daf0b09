"""MapperService over a real gRPC server on loopback: unary, batch, stream and the matrix."""

from __future__ import annotations

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
