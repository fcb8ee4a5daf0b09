"""A caller with nothing but server reflection (as a team in another language starts) connects,
posts, reads a refusal, reads the link by name and unlinks, against a poster started from its
console script. No generated xerolink module is imported here: every message class comes from the
descriptors the server serves, and requests are written as proto3 JSON."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from xero_emulator import EmulatorServer

from tests.fixtures.services import poster_process

SERVICE = "xerolink.poster.v1.PosterService"


class ReflectionClient:
    """Calls any method of the service by name with JSON in and JSON out."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        self.service = self.pool.FindServiceByName(SERVICE)

    def _method(self, name: str) -> tuple[Any, Any, str]:
        method = self.service.methods_by_name[name]
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        return request, response, f"/{SERVICE}/{name}"

    def call(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        request, response, path = self._method(name)
        rpc = self.channel.unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response.FromString
        )
        answer = rpc(json_format.ParseDict(body, request()), timeout=10)
        return json_format.MessageToDict(answer)

    def stream(self, name: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        request, response, path = self._method(name)
        rpc = self.channel.unary_stream(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response.FromString
        )
        for answer in rpc(json_format.ParseDict(body, request()), timeout=30):
            yield json_format.MessageToDict(answer)


@pytest.fixture
def client(tmp_path: Path, mapper_process_target: str) -> Iterator[ReflectionClient]:
    with poster_process(tmp_path, mapper_process_target) as target, grpc.insecure_channel(target) as channel:
        yield ReflectionClient(channel)


def _header(record_id: int) -> dict[str, Any]:
    return {
        "id": str(record_id),
        "divisionId": "1",
        "currencyCode": "AUD",
        "postedAt": "2026-03-02T09:30:00Z",
        "transactionDate": {"year": 2026, "month": 3, "day": 2},
        "participant": {"participantId": "501", "displayName": "Harper & Cole Pty Ltd"},
    }


def _aud(cents: int) -> dict[str, str]:
    return {"currencyCode": "AUD", "units": str(cents)}


def _context() -> dict[str, Any]:
    return {
        "profile": "POLICY_PROFILE_ACTIONSTEP_COMPATIBLE",
        "linkedDivisionId": "1",
        "connectedAt": "2026-01-01T00:00:00Z",
        "baseCurrencyCode": "AUD",
        "accountingMethod": "ACCOUNTING_METHOD_ACCRUAL",
        "accountAllocation": {"accounts_receivable": "610", "trust_bank": "091", "trust_liability": "850"},
        "taxCodeMap": {"GST": "OUTPUT", "FRE": "EXEMPTOUTPUT"},
        "chart": [
            {"code": "200", "name": "Legal Fees", "type": "REVENUE", "status": "ACTIVE", "taxType": "OUTPUT"},
            {"code": "610", "name": "Accounts Receivable", "type": "CURRENT", "status": "ACTIVE"},
            {"code": "091", "name": "Trust Account", "type": "BANK", "status": "ACTIVE"},
            {"code": "850", "name": "Trust Liability", "type": "CURRLIAB", "status": "ACTIVE"},
        ],
    }


def test_a_reflection_only_caller_posts_reads_and_unlinks(client: ReflectionClient, emulator: EmulatorServer) -> None:
    org = emulator.create_organisation("Reflection Legal")
    client.call(
        "CreateConnection",
        {
            "connection": {
                "connectionId": "main",
                "xeroBaseUrl": emulator.base_url,
                "xeroTenantId": org["tenant_id"],
                "accessToken": org["access_token"],
                "refreshToken": org["refresh_token"],
                "mappingContext": _context(),
            }
        },
    )
    line = {"description": "Advice", "glAccount": "200", "taxCode": "GST", "amount": _aud(45000), "tax": _aud(4500)}
    bill = {
        "header": _header(1103),
        "clientBill": {
            "billNumber": "INV-1103",
            "dueDate": {"year": 2026, "month": 4, "day": 1},
            "lines": [line],
            "totals": {"exclusive": _aud(45000), "tax": _aud(4500), "inclusive": _aud(49500)},
        },
    }

    posted = client.call("PostTransaction", {"connectionId": "main", "transaction": bill, "requestId": "bill-1103"})
    assert posted["outcome"] == "POST_OUTCOME_ACCEPTED"
    assert posted["decision"]["outcome"] == "DECISION_OUTCOME_SUPPORTED"
    states = [u["posting"].get("state") for u in client.stream("WatchPosting", {"name": posted["posting"]["name"]})]
    assert states[-1] == "LINK_STATE_LINKED"

    journal = {
        "header": _header(1104),
        "generalJournal": {
            "narration": "Reclassify",
            "lines": [{"glAccount": "200", "amount": _aud(100)}, {"glAccount": "610", "amount": _aud(-100)}],
        },
    }
    refused = client.call("PostTransaction", {"connectionId": "main", "transaction": journal})
    assert refused["outcome"] == "POST_OUTCOME_NOT_SUPPORTED"
    assert refused["decision"]["outcome"] == "DECISION_OUTCOME_NOT_SUPPORTED"
    assert refused["decision"]["reasonCode"] and refused["decision"]["reason"]

    link = client.call("GetLink", {"name": "connections/main/links/client-bill/1103"})["link"]
    assert link["name"] == "connections/main/links/client-bill/1103"
    assert link["state"] == "LINK_STATE_LINKED"
    assert client.call("GetLink", {"name": "connections/main/links/1/1103"})["link"] == link

    unlinked = client.call("UnlinkLinks", {"connectionId": "main", "records": [link["record"]], "confirm": True})
    assert unlinked["unlinkedCount"] == 1
    assert unlinked["outcomes"][0]["linkName"] == link["name"]
    after = client.call("GetLink", {"name": link["name"]})["link"]
    assert after["state"] == "LINK_STATE_UNLINKED"
