"""The registry's Alembic environment (env.py) and its frozen revisions (versions/). Start-up
runs them through adapters/migrations.py; docs/migrations.md says how to add a revision."""
