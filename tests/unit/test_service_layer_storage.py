"""The poster's service layer reaches the database only through the unit of work's repositories:
none of its modules imports SQLAlchemy or SQLModel, and the repositories the unit of work hands
out are the ones service_layer/ports.py describes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.service_layer import ports
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

SERVICE_LAYER = Path(__file__).parents[2] / "services/poster/xerolink_poster/service_layer"
STORAGE = ("sqlalchemy", "sqlmodel")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(SERVICE_LAYER.rglob("*.py")), ids=lambda p: str(p.relative_to(SERVICE_LAYER)))
def test_a_service_layer_module_imports_no_database_library(path: Path) -> None:
    storage = sorted(n for n in _imported(path) if n.split(".")[0] in STORAGE)
    assert storage == [], f"{path.name} imports {storage}"


def test_the_unit_of_work_hands_out_a_repository_per_aggregate(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        migrate(db)
        with UnitOfWork(db, write=False) as uow:
            aggregates = sorted(n for n, v in vars(ports.Repositories).items() if isinstance(v, property))
            assert all(getattr(uow, name) is not None for name in aggregates)
            assert aggregates == [
                "backfills",
                "connections",
                "contacts",
                "corrections",
                "drift",
                "leases",
                "links",
                "matters",
                "outbox",
            ]
            assert uow.connections.get_connection("nobody") is None
            assert uow.links.list_postings("nobody", "", None, 10) == []
    finally:
        db.dispose()
