"""`labelloop project settings`: show and change the workbench queue settings."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from labelloop.cli import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def run(url: str, *args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args), "--database-url", url])


def test_settings_show_change_and_refuse_bad_values(fresh_database_url: str) -> None:
    url = fresh_database_url
    created = run(url, "project", "create", "intents", "--schema", EXAMPLES / "intent.yaml")
    assert created.exit_code == 0, created.output
    shown = run(url, "project", "settings", "intents", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == {
        "project_id": 1,
        "overlap": 3,
        "gold_rate": 0.1,
        "lease_minutes": 30,
    }
    changed = run(url, "project", "settings", "intents", "--overlap", "2", "--gold-rate", "0.05")
    assert changed.exit_code == 0, changed.output
    assert "overlap 2, gold rate 0.05, lease 30 min" in changed.stdout
    again = json.loads(run(url, "project", "settings", "1", "--json").stdout)
    assert (again["overlap"], again["gold_rate"]) == (2, 0.05)
    bad = run(url, "project", "settings", "intents", "--gold-rate", "1.5")
    assert bad.exit_code == 2 and "--gold-rate" in bad.output
    missing = run(url, "project", "settings", "nope")
    assert missing.exit_code == 1 and "no project named 'nope'" in missing.output
    assert runner.invoke(app, ["project", "settings", "--help"]).exit_code == 0
