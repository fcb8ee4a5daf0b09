"""Frozen revisions: once released, a revision is never edited; a schema change is a new one."""
