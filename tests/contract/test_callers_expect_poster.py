"""Consumer-driven contracts of the poster's own API: recorded examples of what internal callers
send and the response (or error) fields they read, verified against a running poster."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.poster.v1 import backfill_pb2, correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.commands import watch_until_settled
from xerolink_cli.connections import register_emulated_connection
from xerolink_cli.demo import mapping_context
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_poster.service_layer.connection_facts import chart_from_accounts, set_tax_rates

from tests.contract.pact import Pact, check, load_pacts, to_dict
from tests.fixtures.processes import child_env, console_script, free_port, running

PACTS = load_pacts("callers-expect-poster")
REQUESTS: dict[str, type[Message]] = {
    "PostTransaction": poster_pb2.PostTransactionRequest,
    "GetLink": poster_pb2.GetLinkRequest,
    "ListLinks": poster_pb2.ListLinksRequest,
    "UnlinkLinks": unlink_pb2.UnlinkLinksRequest,
    "RunPreflight": backfill_pb2.RunPreflightRequest,
    "StartBackfill": backfill_pb2.StartBackfillRequest,
    "PlanCorrection": correction_pb2.PlanCorrectionRequest,
}


@dataclasses.dataclass
class Stack:
    poster: poster_grpc.PosterServiceStub
    emulator: EmulatorServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mapper_process_target: str) -> Iterator[Stack]:
    folder: Path = tmp_path_factory.mktemp("poster-pacts")
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0)).start()
    port = free_port()
    env = child_env(
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
        XEROLINK_MAPPER_TARGET=mapper_process_target,
        XEROLINK_DATABASE_URL=f"sqlite:///{folder / 'registry.db'}",
    )
    try:
        with (
            running(console_script("xerolink-poster"), port, env=env, log=folder / "poster.log"),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            yield Stack(poster_grpc.PosterServiceStub(channel), emulator)
    finally:
        emulator.stop()


def connect(stack: Stack, connection_id: str) -> None:
    """A connection as ConnectOrganisation leaves one: with the organisation's chart and tax rates."""
    org: dict[str, Any] = stack.emulator.create_organisation(f"Firm of {connection_id}")
    organisation = stack.emulator.state.organisation(org["tenant_id"])
    context = mapping_context()
    context.chart.extend(chart_from_accounts(list(organisation.accounts.values())))
    set_tax_rates(context, list(organisation.tax_rates.values()), organisation.country_code)
    register_emulated_connection(stack.poster, connection_id, stack.emulator.base_url, org, context)


@pytest.mark.parametrize("pact", PACTS, ids=[p.name for p in PACTS])
def test_poster_honours_its_callers_pact(pact: Pact, stack: Stack) -> None:
    assert pact.provider == "poster" and pact.rpc in REQUESTS
    connection_id = pact.path.stem.replace("_", "-")
    connect(stack, connection_id)
    for given in pact.given:
        tx = json_format.ParseDict(given, poster_pb2.PostTransactionRequest().transaction)
        posting = stack.poster.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=tx), timeout=10
        ).posting
        settled = watch_until_settled(stack.poster, posting)
        assert settled.state == poster_pb2.LINK_STATE_LINKED, f"given {tx.header.id} did not link: {settled}"

    request = json_format.ParseDict({**pact.request, "connectionId": connection_id}, REQUESTS[pact.rpc]())
    call = getattr(stack.poster, pact.rpc)
    if pact.expect_error:
        with pytest.raises(grpc.RpcError) as failure:
            call(request, timeout=10)
        err = from_rpc_error(failure.value)
        observed = {
            "code": err.code.name,
            "reason": err.reason,
            "message": err.message,
            "field_violations": [dataclasses.asdict(v) for v in err.field_violations],
            "precondition_violations": [dataclasses.asdict(v) for v in err.precondition_violations],
        }
        problems = check(observed, pact.expect_error)
    else:
        problems = check(to_dict(call(request, timeout=10)), pact.expect)
    assert not problems, f"{pact.consumer}: {pact.description}\n" + "\n".join(problems)
