"""A unit of work over a Registry held in memory: hands out the fake repositories and, like the
real one, keeps nothing of a unit that was not committed."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from xerolink_poster.service_layer.ports import Repositories

from tests.unit.fakes.corrections import FakeCorrectionRepository
from tests.unit.fakes.drift import FakeDriftRepository
from tests.unit.fakes.links import FakeLinkRepository
from tests.unit.fakes.others import (
    FakeBackfillRepository,
    FakeConnectionRepository,
    FakeContactRepository,
    FakeLeaseRepository,
    FakeMatterRepository,
)
from tests.unit.fakes.outbox import FakeOutboxRepository
from tests.unit.fakes.registry import Registry

T = TypeVar("T")


class FakeUnitOfWork:
    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        self.committed = False
        self.links = FakeLinkRepository(self.registry)
        self.outbox = FakeOutboxRepository(self.registry)
        self.contacts = FakeContactRepository(self.registry)
        self.connections = FakeConnectionRepository(self.registry)
        self.corrections = FakeCorrectionRepository(self.registry)
        self.backfills = FakeBackfillRepository()
        self.leases = FakeLeaseRepository()
        self.matters = FakeMatterRepository()
        self.drift = FakeDriftRepository()
        self._before: Registry | None = None

    def __enter__(self) -> FakeUnitOfWork:
        # Rows are changed in place (as a session's are), so rolling back restores a copy.
        self._before = copy.deepcopy(self.registry)
        self.committed = False
        return self

    def commit(self) -> None:
        self.committed = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.committed and self._before is not None:
            for f in dataclasses.fields(Registry):
                setattr(self.registry, f.name, getattr(self._before, f.name))
        self._before = None

    def run(self, work: Callable[[FakeUnitOfWork], T]) -> T:
        """`work` in one unit, committed if it returns (service_layer's run_in_transaction)."""
        with self:
            result = work(self)
            self.commit()
            return result


def as_repositories(uow: FakeUnitOfWork) -> Repositories:
    """Where mypy checks that every fake repository implements its port (ports.py)."""
    return uow
