"""The CLI's transaction files: one object (on one line or pretty-printed), NDJSON or an array,
and errors that name the line."""

from __future__ import annotations

import io
import json

import pytest
from google.protobuf import json_format
from xerolink_cli.transactions import TransactionFileError, parse_transactions
from xerolink_mapper import samples

BILL = json_format.MessageToDict(samples.client_bill(11))
PAYMENT = json_format.MessageToDict(samples.sample_transactions(20)["client_bill_payment"])


def ids(text: str) -> list[int]:
    return [tx.header.id for tx in parse_transactions(io.StringIO(text), "week.json")]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(BILL),
        json.dumps(BILL, indent=2),
        "\n\n" + json.dumps(BILL, indent=2) + "\n",
    ],
    ids=["one line", "pretty-printed", "after blank lines"],
)
def test_one_object_is_one_transaction(text: str) -> None:
    assert ids(text) == [11]


def test_ndjson_and_arrays_keep_their_order() -> None:
    assert ids(json.dumps(PAYMENT) + "\n\n" + json.dumps(BILL) + "\n") == [22, 11]
    assert ids(json.dumps([BILL, PAYMENT], indent=2)) == [11, 22]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (json.dumps(BILL) + "\n" + '{"header": {"id": "3"}\n', "week.json:2: not valid JSON"),
        ("{\n" + '  "header": {"id": "3"},\n' + '  "clientBill": nope\n}\n', "week.json:3: not valid JSON"),
        ("\n" + json.dumps({"header": {"id": "3"}, "clientBill": {"lines": "x"}}, indent=2), "week.json:2: "),
        (json.dumps(BILL) + "\n" + json.dumps({"clientBill": {"billNumbr": "1"}}), "week.json:2: "),
    ],
    ids=["broken NDJSON line", "broken pretty object", "bad field in a pretty object", "bad field in NDJSON"],
)
def test_an_unreadable_transaction_names_its_line(text: str, where: str) -> None:
    with pytest.raises(TransactionFileError) as err:
        ids(text)
    assert str(err.value).startswith(where), str(err.value)
