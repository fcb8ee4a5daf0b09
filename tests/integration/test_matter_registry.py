"""The matters repository on SQLite and on the real PostgreSQL server: the connection's tracking
category and its matters' options, kept once, listed by matter, and the matter's unsettled links."""

from __future__ import annotations

from xerolink.actionstep.v1 import transaction_pb2
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import LinkRow, MatterOptionLinkRow, OutboxRow, TrackingCategoryLinkRow
from xerolink_poster.domain.matters import OptionState
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer.ports import IndexedPosting
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction


def _option(action_id: int, option_id: str, connection_id: str = "c1") -> MatterOptionLinkRow:
    now = now_us()
    return MatterOptionLinkRow(
        connection_id=connection_id,
        action_id=action_id,
        tracking_category_id="cat-1",
        tracking_option_id=option_id,
        name=str(action_id),
        state=OptionState.ACTIVE,
        origin="created",
        create_us=now,
        update_us=now,
    )


def test_the_category_link_is_kept_once_per_connection(database: Database) -> None:
    def add(category_id: str) -> None:
        run_in_transaction(
            database,
            lambda uow: uow.matters.add_category(
                TrackingCategoryLinkRow(
                    connection_id="c1",
                    category_name="Matter",
                    tracking_category_id=category_id,
                    create_us=now_us(),
                    origin="created",
                )
            ),
        )

    add("cat-1")
    add("cat-2")  # a second find of another category never replaces the first
    with UnitOfWork(database, write=False) as uow:
        row = uow.matters.get_category("c1")
        assert row is not None and row.tracking_category_id == "cat-1"
        assert uow.matters.get_category("c2") is None


def test_options_are_kept_once_per_matter_and_read_by_matter_or_option(database: Database) -> None:
    def fill(uow: UnitOfWork) -> None:
        uow.matters.add_option(_option(5, "opt-5"))
        uow.matters.add_option(_option(6, "opt-6"))
        uow.matters.add_option(_option(5, "opt-other"))
        uow.matters.add_option(_option(5, "opt-c2", connection_id="c2"))

    run_in_transaction(database, fill)
    with UnitOfWork(database, write=False) as uow:
        found = uow.matters.options_of("c1", [5, 6, 7])
        assert {k: v.tracking_option_id for k, v in found.items()} == {5: "opt-5", 6: "opt-6"}
        assert uow.matters.matter_of_option("c1", "opt-6") == 6
        assert uow.matters.matter_of_option("c1", "opt-c2") is None


def test_an_options_state_changes_and_the_time_with_it(database: Database) -> None:
    run_in_transaction(database, lambda uow: uow.matters.add_option(_option(5, "opt-5")))
    run_in_transaction(
        database, lambda uow: uow.matters.set_option_state("c1", 5, OptionState.ARCHIVED, now_us() + 1_000_000)
    )
    with UnitOfWork(database, write=False) as uow:
        row = uow.matters.get_option("c1", 5)
    assert row is not None and row.state == OptionState.ARCHIVED and row.update_us > row.create_us


def test_options_are_listed_by_matter_a_page_at_a_time(database: Database) -> None:
    def fill(uow: UnitOfWork) -> None:
        for action_id in (30, 10, 20):
            uow.matters.add_option(_option(action_id, f"o{action_id}"))

    run_in_transaction(database, fill)
    with UnitOfWork(database, write=False) as uow:
        first = [r.action_id for r in uow.matters.list_options("c1", 0, 2)]
        rest = [r.action_id for r in uow.matters.list_options("c1", first[-1], 2)]
    assert (first, rest) == ([10, 20], [30])


def test_a_matters_unsettled_links_are_counted_by_the_records_matter(database: Database) -> None:
    def fill(uow: UnitOfWork) -> None:
        now = now_us()
        for record_id, action_id, state in ((1, 5, "pending"), (2, 5, "linked"), (3, 6, "waiting"), (4, 5, "waiting")):
            link = uow.links.add_link(
                LinkRow(
                    connection_id="c1",
                    kind=1,
                    record_id=record_id,
                    link_group=1,
                    state=state,
                    fingerprint="f" * 64,
                    posting_id=f"p{record_id}",
                    create_us=now,
                    update_us=now,
                )
            )
            transaction = transaction_pb2.Transaction()
            transaction.header.action_id = action_id
            uow.links.index_postings([IndexedPosting(link, transaction, [], fresh=True)])

    run_in_transaction(database, fill)
    with UnitOfWork(database, write=False) as uow:
        assert len(uow.matters.unsettled_links_of_matter("c1", 5, ["pending", "waiting"])) == 2
        assert len(uow.matters.unsettled_links_of_matter("c1", 6, ["pending", "waiting"])) == 1
        assert uow.matters.unsettled_links_of_matter("c1", 7, ["pending", "waiting"]) == set()


def test_a_connections_open_work_is_read_with_its_links_operations(database: Database) -> None:
    """What CloseMatter reads for the matters postings not yet in Xero carry on their lines: the
    connection's outbox entries that are not done (ready, waiting, claimed), none of another's."""

    def fill(uow: UnitOfWork) -> None:
        now = now_us()
        for link_id, connection_id, state, claimed in (
            (1, "c1", OutboxState.READY, ""),
            (2, "c1", OutboxState.WAITING, ""),
            (3, "c1", OutboxState.READY, "poster-a"),
            (4, "c1", OutboxState.DONE, ""),
            (5, "c2", OutboxState.READY, ""),
        ):
            uow.outbox.add_outbox(
                False,
                OutboxRow(
                    tenant_id="t1",
                    connection_id=connection_id,
                    link_id=link_id,
                    posting_id=f"p{link_id}",
                    operations=f"ops-{link_id}".encode(),
                    state=state,
                    available_us=now,
                    claimed_by=claimed,
                    create_us=now,
                ),
            )

    run_in_transaction(database, fill)
    with UnitOfWork(database, write=False) as uow:
        found = sorted(uow.outbox.open_operations("c1"))
    assert found == [(1, b"ops-1"), (2, b"ops-2"), (3, b"ops-3")]


def test_names_renamed_in_xero_are_kept_by_option_id_and_the_category_by_connection(database: Database) -> None:
    def fill(uow: UnitOfWork) -> None:
        uow.matters.add_category(
            TrackingCategoryLinkRow(
                connection_id="c1",
                category_name="Matter",
                tracking_category_id="cat-1",
                create_us=now_us(),
                origin="created",
            )
        )
        uow.matters.add_option(_option(5, "opt-5"))
        uow.matters.add_option(_option(6, "opt-6"))
        uow.matters.add_option(_option(5, "opt-c2", connection_id="c2"))

    run_in_transaction(database, fill)
    with UnitOfWork(database, write=False) as uow:
        assert uow.matters.option_names("c1") == {"opt-5": "5", "opt-6": "6"}
    later = now_us() + 1_000_000

    def rename(uow: UnitOfWork) -> None:
        uow.matters.set_category_name("c1", "Files")
        uow.matters.rename_options("c1", {"opt-5": "Smith v Jones", "opt-c2": "not c1's"}, later)

    run_in_transaction(database, rename)
    with UnitOfWork(database, write=False) as uow:
        category = uow.matters.get_category("c1")
        five, six = uow.matters.get_option("c1", 5), uow.matters.get_option("c1", 6)
        other = uow.matters.get_option("c2", 5)
    assert category is not None and category.category_name == "Files"
    assert five is not None and (five.name, five.update_us, five.action_id) == ("Smith v Jones", later, 5)
    assert six is not None and six.name == "6"
    assert other is not None and other.name == "5"
