"""Regenerate the initial migration from the models (only while no release exists).

Usage: .venv/bin/python tools/regen_initial_migration.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from labelloop.store import make_engine
from labelloop.store.migrate import MIGRATIONS, alembic_config

for old in (MIGRATIONS / "versions").glob("0001_*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    engine = make_engine(f"sqlite:///{Path(tmp) / 'gen.db'}")
    command.revision(
        alembic_config(engine), message="initial schema", autogenerate=True, rev_id="0001"
    )
    engine.dispose()
