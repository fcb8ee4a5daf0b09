"""Write a new revision of the poster's registry schema from the table classes.

    python tools/new_migration.py "add the widget column to outbox"

Migrates a scratch SQLite registry (or --database-url) to the current head, compares it with the
table classes in services/poster/xerolink_poster/adapters/ and writes the difference as the next
numbered revision under adapters/alembic/versions/. Read and edit what it wrote: autogenerate
does not see renames (it writes a drop and an add) and writes no data migration.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for source in ("gen/python", "services/common", "services/mapper", "services/poster"):
    sys.path.insert(0, str(ROOT / source))

from alembic import command  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from xerolink_poster.adapters.database import open_database  # noqa: E402
from xerolink_poster.adapters.migrations import SCRIPT_LOCATION, alembic_config, migrate  # noqa: E402


def next_revision_id() -> str:
    """Revisions are numbered 0001, 0002, ... so the files sort in the order they apply."""
    numbers = [int(s.revision) for s in ScriptDirectory(str(SCRIPT_LOCATION)).walk_revisions()]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("message", help="what the revision does, in the imperative mood")
    parser.add_argument("--database-url", help="compare with this registry instead of a scratch SQLite file")
    parser.add_argument("--empty", action="store_true", help="write an empty revision (a data migration)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        db = open_database(args.database_url or f"sqlite:///{Path(scratch) / 'registry.db'}")
        try:
            migrate(db)
            with db.write.begin() as conn:
                config = alembic_config(conn)
                config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
                script = command.revision(config, args.message, autogenerate=not args.empty, rev_id=next_revision_id())
        finally:
            db.dispose()
    assert script is not None and not isinstance(script, list), "one head, so one revision"
    # The template imports op and sa whether or not the revision uses them.
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--quiet", script.path], check=False)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", script.path], check=False)
    print(f"wrote {Path(script.path).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
