"""Callers are authorised per connection (tenant): one tenant's caller can never read, post,
watch or unlink another's links and postings, and its attempts change nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import drift_pb2, organisations_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_cli.connections import register_emulated_connection
from xerolink_cli.demo import mapping_context
from xerolink_cli.transactions import demo_transactions
from xerolink_common.errors import XerolinkError
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.security import server_security_from_env
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig

from tests.fixtures.hand_edits import hand_edit, observe
from tests.fixtures.poster import settings

TOKENS = {"firm-a-app": "token-a-0123456789", "firm-b-app": "token-b-0123456789", "operator": "token-o-0123456789"}
SCOPES = {"firm-a-app": ["firm-a"], "firm-b-app": ["firm-b"], "operator": ["*"]}


@pytest.fixture
def poster(
    tmp_path: Path, database_url: str, mapper_target: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[bootstrap.PosterApp]:
    callers = tmp_path / "callers.json"
    callers.write_text(
        json.dumps(
            {
                "callers": [
                    {
                        "name": name,
                        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                        "connections": SCOPES[name],
                    }
                    for name, token in TOKENS.items()
                ]
            }
        )
    )
    monkeypatch.setenv("XEROLINK_CALLERS_FILE", str(callers))
    config = PosterConfig("127.0.0.1:0", database_url, mapper_target, settings(), "isolation", 8, True)
    app = bootstrap.start(config, server_security_from_env("poster"))
    yield app
    app.stop(0)


def as_caller(name: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {TOKENS[name]}")]


def bill() -> transaction_pb2.Transaction:
    return next(t for t in demo_transactions() if t.WhichOneof("kind") == "client_bill")


def test_one_tenant_can_never_reach_anothers_links_or_postings(
    poster: bootstrap.PosterApp, emulator: EmulatorServer
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{poster.port}") as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        for connection_id in ("firm-a", "firm-b"):
            org = emulator.create_organisation(connection_id)
            register_emulated_connection(
                stub, connection_id, emulator.base_url, org, mapping_context(), metadata=as_caller("operator")
            )
        b_posting = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-b", transaction=bill()),
            metadata=as_caller("firm-b-app"),
        ).posting
        for update in stub.WatchPosting(
            poster_pb2.WatchPostingRequest(name=b_posting.name), metadata=as_caller("firm-b-app"), timeout=20
        ):
            if update.posting.state == poster_pb2.LINK_STATE_LINKED:
                break
        else:
            pytest.fail("firm-b's bill did not link")
        b_links_before = stub.ListLinks(
            poster_pb2.ListLinksRequest(connection_id="firm-b"), metadata=as_caller("operator")
        )

        a = as_caller("firm-a-app")
        denied: dict[str, Callable[[], object]] = {
            "post": lambda: stub.PostTransaction(
                poster_pb2.PostTransactionRequest(connection_id="firm-b", transaction=bill()), metadata=a
            ),
            "batch": lambda: stub.BatchPostTransactions(
                poster_pb2.BatchPostTransactionsRequest(connection_id="firm-b", transactions=[bill()]), metadata=a
            ),
            "get link": lambda: stub.GetLink(
                poster_pb2.GetLinkRequest(connection_id="firm-b", record=b_posting.record), metadata=a
            ),
            "list links": lambda: stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-b"), metadata=a),
            "list every connection's postings": lambda: stub.ListPostings(poster_pb2.ListPostingsRequest(), metadata=a),
            "get connection": lambda: stub.GetConnection(
                poster_pb2.GetConnectionRequest(connection_id="firm-b"), metadata=a
            ),
            "unlink": lambda: stub.UnlinkLinks(
                unlink_pb2.UnlinkLinksRequest(connection_id="firm-b", records=[b_posting.record], confirm=True),
                metadata=a,
            ),
            "preview an unlink": lambda: stub.UnlinkLinks(
                unlink_pb2.UnlinkLinksRequest(connection_id="firm-b", records=[b_posting.record], validate_only=True),
                metadata=a,
            ),
            "list orphans": lambda: stub.ListOrphans(unlink_pb2.ListOrphansRequest(connection_id="firm-b"), metadata=a),
        }
        for what, call in denied.items():
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, what
            assert from_rpc_error(err.value).reason == "CONNECTION_NOT_PERMITTED", what

        # By name, another tenant's posting is indistinguishable from a missing one.
        with pytest.raises(grpc.RpcError) as err:
            stub.GetPosting(poster_pb2.GetPostingRequest(name=b_posting.name), metadata=a)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            next(iter(stub.WatchPosting(poster_pb2.WatchPostingRequest(name=b_posting.name), metadata=a)))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.RpcError) as err:
            stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-a"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

        # Its own tenant works, and nothing of firm-b changed.
        own = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-a", transaction=bill()), metadata=a
        )
        assert own.posting.decision.supported
        after = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-b"), metadata=as_caller("operator"))
        assert after == b_links_before
        audit = stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-a", record=own.posting.record, include_audit=True), metadata=a
        ).link.audit
        assert audit and all(entry.actor == "caller:firm-a-app" for entry in audit if entry.actor.startswith("caller:"))


def test_a_caller_cannot_route_its_connection_into_another_firms_organisation(
    poster: bootstrap.PosterApp, emulator: EmulatorServer
) -> None:
    """Routing sends one connection's transactions to another: a caller that may not post to the
    other connection may not name it, or firm A's trust money would be booked in firm B's Xero."""
    context = mapping_context()
    context.profile = mapper_pb2.POLICY_PROFILE_EXTENDED
    with grpc.insecure_channel(f"127.0.0.1:{poster.port}") as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        for connection_id in ("firm-a", "firm-b"):
            org = emulator.create_organisation(connection_id)
            register_emulated_connection(
                stub, connection_id, emulator.base_url, org, context, metadata=as_caller("operator")
            )
        attempts = [
            organisations_pb2.ConnectionRouting(trust_connection_id="firm-b"),
            organisations_pb2.ConnectionRouting(division_connections={2: "firm-b"}),
        ]
        for routing in attempts:
            with pytest.raises(grpc.RpcError) as refused:
                stub.UpdateConnectionRouting(
                    organisations_pb2.UpdateConnectionRoutingRequest(connection_id="firm-a", routing=routing),
                    metadata=as_caller("firm-a-app"),
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert from_rpc_error(refused.value).reason == "CONNECTION_NOT_PERMITTED"
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateConnection(
                poster_pb2.CreateConnectionRequest(
                    connection=poster_pb2.Connection(
                        connection_id="firm-a",
                        xero_base_url=emulator.base_url,
                        xero_tenant_id="tenant-x",
                        access_token="token",
                        mapping_context=context,
                        routing=organisations_pb2.ConnectionRouting(trust_connection_id="firm-b"),
                    )
                ),
                metadata=as_caller("firm-a-app"),
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for connection_id in ("firm-a", "firm-b"):
            connection = stub.GetConnection(
                poster_pb2.GetConnectionRequest(connection_id=connection_id), metadata=as_caller("operator")
            ).connection
            assert connection.routing == organisations_pb2.ConnectionRouting()
            assert connection.mapping_context.ledgers == mapper_pb2.ORGANISATION_LEDGERS_UNSPECIFIED


def test_another_tenants_drift_looks_like_a_missing_one_and_stays_open(
    poster: bootstrap.PosterApp, emulator: EmulatorServer
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{poster.port}") as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        org = emulator.create_organisation("firm-b")
        register_emulated_connection(
            stub, "firm-b", emulator.base_url, org, mapping_context(), metadata=as_caller("operator")
        )
        b = as_caller("firm-b-app")
        posted = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-b", transaction=bill()), metadata=b
        ).posting
        for update in stub.WatchPosting(poster_pb2.WatchPostingRequest(name=posted.name), metadata=b, timeout=20):
            if update.posting.state == poster_pb2.LINK_STATE_LINKED:
                invoice_id = update.posting.link.xero_objects[0].xero_id
                break
        else:
            pytest.fail("firm-b's bill did not link")
        hand_edit(emulator, org["tenant_id"], "Invoices", invoice_id, {"Status": "VOIDED"})
        [drift] = observe(
            poster, emulator, org, "Invoices", xero_pb2.OBJECT_TYPE_INVOICE, invoice_id, connection_id="firm-b"
        )
        drift_id = drift.id or 0
        name = f"connections/firm-b/drifts/{drift_id}"
        accept = drift_pb2.DRIFT_RESOLUTION_ACCEPT_XERO

        def refusal(drift_name: str) -> XerolinkError:
            with pytest.raises(grpc.RpcError) as err:
                stub.ResolveDrift(
                    drift_pb2.ResolveDriftRequest(name=drift_name, resolution=accept), metadata=as_caller("firm-a-app")
                )
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            return from_rpc_error(err.value)

        theirs, missing = refusal(name), refusal(f"connections/firm-b/drifts/{drift_id + 1000}")
        assert theirs.reason == missing.reason == "DRIFT_NOT_FOUND"
        assert theirs.message == missing.message.replace(str(drift_id + 1000), str(drift_id))
        listed = stub.ListDrift(drift_pb2.ListDriftRequest(connection_id="firm-b"), metadata=b).drifts
        assert [(d.name, d.state) for d in listed] == [(name, drift_pb2.DRIFT_STATE_OPEN)]
