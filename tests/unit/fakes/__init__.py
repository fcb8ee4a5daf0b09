"""In-memory repositories and a unit of work over them, for unit tests of the poster's service
layer without a database (the ports are in xerolink_poster/service_layer/ports.py)."""

from tests.unit.fakes.registry import Registry
from tests.unit.fakes.unit_of_work import FakeUnitOfWork

__all__ = ["FakeUnitOfWork", "Registry"]
