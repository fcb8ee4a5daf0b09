"""Reports by matter against the emulator, through a real gRPC poster on SQLite and PostgreSQL:
tracked lines carry their matter's option, found or created once (across lost answers too),
Xero's limits refused clearly, and closed matters archived and reactivated."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xero_emulator.testing import connect as emulator_client
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

from tests.fixtures.poster import PosterFactory, connect, settings, stub_for, wait_settled, xero_objects

MATTER = 7001  # samples.header's action_id


def tracking_context(category_name: str = "") -> mapper_pb2.MappingContext:
    context = samples.demo_context(profile=mapper_pb2.POLICY_PROFILE_EXTENDED)
    context.matter_tracking.enabled = True
    context.matter_tracking.category_name = category_name
    return context


def bill(record_id: int, action_id: int = MATTER) -> transaction_pb2.Transaction:
    transaction = samples.client_bill(record_id)
    transaction.header.action_id = action_id
    return transaction


def post(stub: poster_grpc.PosterServiceStub, transaction: transaction_pb2.Transaction) -> poster_pb2.Posting:
    request = poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=transaction)
    posting: poster_pb2.Posting = stub.PostTransaction(request).posting
    return posting


def categories(emulator: EmulatorServer, org: dict[str, Any]) -> list[dict[str, Any]]:
    with emulator_client(emulator, org) as client:
        answer = client.get("/TrackingCategories", params={"includeArchived": "true"})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["TrackingCategories"]
    return found


def options_named(emulator: EmulatorServer, org: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [o for c in categories(emulator, org) if c["Name"] == "Matter" for o in c["Options"] if o["Name"] == name]


def list_options(stub: poster_grpc.PosterServiceStub) -> list[organisations_pb2.MatterOption]:
    answer = stub.ListMatterOptions(organisations_pb2.ListMatterOptionsRequest(connection_id="firm-1"))
    return list(answer.options)


def close(stub: poster_grpc.PosterServiceStub, action_id: int = MATTER) -> organisations_pb2.CloseMatterResponse:
    request = organisations_pb2.CloseMatterRequest(connection_id="firm-1", action_id=action_id)
    response: organisations_pb2.CloseMatterResponse = stub.CloseMatter(request, timeout=20)
    return response


def seed(emulator: EmulatorServer, org: dict[str, Any], name: str, options: int = 0, status: str = "ACTIVE") -> None:
    """A category made in Xero by the firm (not by xerolink), with `options` active options."""
    with emulator_client(emulator, org) as client:
        made = client.put("/TrackingCategories", json={"Name": name})
        assert made.status_code == 200, made.text
        category_id = made.json()["TrackingCategories"][0]["TrackingCategoryID"]
        for start in range(0, options, 50):
            batch = [{"Name": f"Existing {i}"} for i in range(start, min(start + 50, options))]
            answer = client.put(f"/TrackingCategories/{category_id}/Options", json={"Options": batch})
            assert answer.status_code == 200, answer.text
        if status != "ACTIVE":
            changed = client.post(f"/TrackingCategories/{category_id}", json={"Status": status})
            assert changed.status_code == 200, changed.text


def line_tracking(emulator: EmulatorServer, org: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [
        line.get("Tracking") or []
        for i in xero_objects(emulator, org["tenant_id"], "Invoices")
        for line in i["LineItems"]
    ]


def test_tracked_lines_reach_xero_with_their_matters_option(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())

    assert wait_settled(stub, post(stub, bill(10)).name).state == poster_pb2.LINK_STATE_LINKED

    [option] = options_named(emulator, org, str(MATTER))
    assert option["Status"] == "ACTIVE"
    tracked = line_tracking(emulator, org)
    assert tracked and all(
        [(t["Name"], t["Option"], t["TrackingOptionID"]) for t in line]
        == [("Matter", str(MATTER), option["TrackingOptionID"])]
        for line in tracked
    )
    [listed] = list_options(stub)
    assert (listed.action_id, listed.name, listed.tracking_option_id, listed.state) == (
        MATTER,
        str(MATTER),
        option["TrackingOptionID"],
        organisations_pb2.MATTER_OPTION_STATE_ACTIVE,
    )


def test_a_matters_option_is_created_once_for_many_postings_and_an_active_category_adopted(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context("Files"))
    seed(emulator, org, "Files")

    postings = [post(stub, bill(20 + i, MATTER + i % 2)) for i in range(6)]

    assert {wait_settled(stub, p.name).state for p in postings} == {poster_pb2.LINK_STATE_LINKED}
    [files] = [c for c in categories(emulator, org) if c["Name"] == "Files"]
    assert sorted(o["Name"] for o in files["Options"]) == [str(MATTER), str(MATTER + 1)]
    assert [o.action_id for o in list_options(stub)] == [MATTER, MATTER + 1]


def test_a_lost_answer_never_makes_a_second_option(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    # Xero creates the option, and the answer is lost on the way back.
    rule = emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="/Options"))

    assert wait_settled(stub, post(stub, bill(30)).name, timeout=30).state == poster_pb2.LINK_STATE_LINKED

    assert rule.hits == 1
    assert len(options_named(emulator, org, str(MATTER))) == 1
    assert post(stub, bill(31)).state != poster_pb2.LINK_STATE_FAILED
    assert len(options_named(emulator, org, str(MATTER))) == 1


def test_an_option_made_before_a_crash_is_found_not_made_again(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    # The poster died after Xero made the option and before the registry kept it: Xero holds an
    # option of the matter's name that the registry does not know.
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    seed(emulator, org, "Matter")
    [category] = [c for c in categories(emulator, org) if c["Name"] == "Matter"]
    with emulator_client(emulator, org) as client:
        made = client.put(f"/TrackingCategories/{category['TrackingCategoryID']}/Options", json={"Name": str(MATTER)})
        assert made.status_code == 200, made.text

    assert wait_settled(stub, post(stub, bill(35)).name).state == poster_pb2.LINK_STATE_LINKED

    [option] = options_named(emulator, org, str(MATTER))
    assert list_options(stub)[0].tracking_option_id == option["TrackingOptionID"]


def test_no_room_for_the_category_fails_the_posting_saying_what_to_do(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    seed(emulator, org, "Region")
    seed(emulator, org, "Department")

    settled = wait_settled(stub, post(stub, bill(40)).name)

    assert settled.state == poster_pb2.LINK_STATE_FAILED
    assert settled.link.last_error.reason == "TRACKING_CATEGORY_LIMIT"
    assert "two active tracking categories" in settled.link.last_error.message
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []
    assert not [c for c in categories(emulator, org) if c["Name"] == "Matter"]


def test_an_archived_category_of_the_name_is_refused_not_adopted(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    seed(emulator, org, "Matter", status="ARCHIVED")

    settled = wait_settled(stub, post(stub, bill(45)).name)

    assert settled.state == poster_pb2.LINK_STATE_FAILED
    assert settled.link.last_error.reason == "TRACKING_CATEGORY_ARCHIVED"
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []


def test_a_full_category_fails_the_posting_and_says_to_close_matters(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    seed(emulator, org, "Matter", options=100)

    settled = wait_settled(stub, post(stub, bill(50)).name)

    assert settled.state == poster_pb2.LINK_STATE_FAILED
    assert settled.link.last_error.reason == "TRACKING_OPTION_LIMIT"
    assert "CloseMatter" in settled.link.last_error.message
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []


def test_close_matter_archives_the_option_and_a_later_posting_makes_it_active_again(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    assert wait_settled(stub, post(stub, bill(60)).name).state == poster_pb2.LINK_STATE_LINKED

    closed = close(stub)
    again = close(stub)

    assert closed.option.state == organisations_pb2.MATTER_OPTION_STATE_ARCHIVED
    assert again.option == closed.option
    [option] = options_named(emulator, org, str(MATTER))
    assert option["Status"] == "ARCHIVED"

    assert wait_settled(stub, post(stub, bill(61)).name).state == poster_pb2.LINK_STATE_LINKED
    [option] = options_named(emulator, org, str(MATTER))
    assert option["Status"] == "ACTIVE"
    assert list_options(stub)[0].state == organisations_pb2.MATTER_OPTION_STATE_ACTIVE
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 2
    assert {t["TrackingOptionID"] for line in line_tracking(emulator, org) for t in line} == {
        option["TrackingOptionID"]
    }
    assert all(line_tracking(emulator, org))  # every line of both bills is tracked


def test_close_matter_of_a_matter_never_tracked_answers_no_option(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator, context=tracking_context())

    assert not close(stub, 999).HasField("option")


def test_close_matter_is_refused_while_postings_of_the_matter_are_pending(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator, context=tracking_context())
    post(stub, bill(70))

    with pytest.raises(grpc.RpcError) as refused:
        close(stub)

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = from_rpc_error(refused.value)
    assert error.reason == "MATTER_HAS_PENDING_POSTINGS"
    assert error.precondition_violations[0].subject == f"connections/firm-1/matters/{MATTER}"
    assert not close(stub, MATTER + 1).HasField("option")  # another matter is not held up


@pytest.mark.parametrize(
    ("connection_id", "action_id", "code", "field"),
    [
        ("", MATTER, grpc.StatusCode.INVALID_ARGUMENT, "connection_id"),
        ("firm-1", 0, grpc.StatusCode.INVALID_ARGUMENT, "action_id"),
        ("firm-1", -4, grpc.StatusCode.INVALID_ARGUMENT, "action_id"),
        ("firm-9", MATTER, grpc.StatusCode.NOT_FOUND, ""),
    ],
)
def test_close_matter_refuses_bad_requests_with_details(
    poster_factory: PosterFactory, emulator: EmulatorServer, connection_id: str, action_id: int, code: Any, field: str
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator, context=tracking_context())

    with pytest.raises(grpc.RpcError) as refused:
        stub.CloseMatter(organisations_pb2.CloseMatterRequest(connection_id=connection_id, action_id=action_id))

    assert refused.value.code() == code
    error = from_rpc_error(refused.value)
    assert [v.field for v in error.field_violations] == ([field] if field else [])


def test_matter_options_are_listed_a_page_at_a_time(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    stub = stub_for(poster_factory(dispatcher=settings(batch_size=5)))
    connect(stub, emulator, context=tracking_context())
    postings = [post(stub, bill(80 + i, 100 + i)) for i in range(5)]
    assert {wait_settled(stub, p.name).state for p in postings} == {poster_pb2.LINK_STATE_LINKED}

    pages: list[list[int]] = []
    token = ""
    while True:
        request = organisations_pb2.ListMatterOptionsRequest(connection_id="firm-1", page_size=2, page_token=token)
        answer = stub.ListMatterOptions(request)
        pages.append([o.action_id for o in answer.options])
        token = answer.next_page_token
        if not token:
            break

    assert pages == [[100, 101], [102, 103], [104]]
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListMatterOptions(organisations_pb2.ListMatterOptionsRequest(connection_id="firm-9"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_reports_by_matter_need_the_extended_profile(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    context = tracking_context()
    context.profile = mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE

    with pytest.raises(grpc.RpcError) as refused:
        connect(stub, emulator, context=context)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [v.field for v in from_rpc_error(refused.value).field_violations]
    assert fields == ["connection.mapping_context.matter_tracking"]


def _rename_in_xero(emulator: EmulatorServer, org: dict[str, Any], category: str, option: str) -> str:
    """The firm renames the category and the matter's option in Xero; returns the option's id."""
    [matter] = [c for c in categories(emulator, org) if c["Name"] == "Matter"]
    [found] = [o for o in matter["Options"] if o["Name"] == str(MATTER)]
    base = f"/TrackingCategories/{matter['TrackingCategoryID']}"
    with emulator_client(emulator, org) as client:
        renamed = client.post(f"{base}/Options/{found['TrackingOptionID']}", json={"Name": option})
        assert renamed.status_code == 200, renamed.text
        renamed = client.post(base, json={"Name": category})
        assert renamed.status_code == 200, renamed.text
    option_id: str = found["TrackingOptionID"]
    return option_id


def test_a_category_and_option_renamed_in_xero_are_sent_under_their_new_names(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    assert wait_settled(stub, post(stub, bill(10)).name).state == poster_pb2.LINK_STATE_LINKED
    option_id = _rename_in_xero(emulator, org, "Files", "Smith v Jones")
    creates = emulator.faults.add(FaultRule("latency", seconds=0.0, methods=("PUT",), path_contains="Invoices"))

    posting = wait_settled(stub, post(stub, bill(11)).name)

    assert posting.state == poster_pb2.LINK_STATE_LINKED
    latest = line_tracking(emulator, org)[-1]
    assert [(t["Name"], t["Option"], t["TrackingOptionID"]) for t in latest] == [("Files", "Smith v Jones", option_id)]
    assert creates.hits == 2  # refused under the old names, sent again once under Xero's
    [listed] = list_options(stub)
    assert (listed.action_id, listed.name, listed.tracking_option_id) == (MATTER, "Smith v Jones", option_id)
    # Known now: the next posting goes at once under the new names.
    assert wait_settled(stub, post(stub, bill(12)).name).state == poster_pb2.LINK_STATE_LINKED
    assert creates.hits == 3


def test_an_element_refused_over_its_tracking_again_after_a_reread_fails_with_xeros_message(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, context=tracking_context())
    assert wait_settled(stub, post(stub, bill(10)).name).state == poster_pb2.LINK_STATE_LINKED
    [matter] = [c for c in categories(emulator, org) if c["Name"] == "Matter"]
    [option] = matter["Options"]
    with emulator_client(emulator, org) as client:  # the firm archives the option in Xero itself
        path = f"/TrackingCategories/{matter['TrackingCategoryID']}/Options/{option['TrackingOptionID']}"
        assert client.post(path, json={"Status": "ARCHIVED"}).status_code == 200
    creates = emulator.faults.add(FaultRule("latency", seconds=0.0, methods=("PUT",), path_contains="Invoices"))
    rereads = emulator.faults.add(
        FaultRule(
            "latency", seconds=0.0, methods=("GET",), path_contains=f"TrackingCategories/{matter['TrackingCategoryID']}"
        )
    )

    posting = post(stub, bill(11))
    settled = wait_settled(stub, posting.name)

    assert settled.state == poster_pb2.LINK_STATE_FAILED
    link = stub.GetLink(poster_pb2.GetLinkRequest(name=posting.link.name)).link
    assert "ARCHIVED" in str(link.last_error)
    assert (rereads.hits, creates.hits) == (1, 2)
