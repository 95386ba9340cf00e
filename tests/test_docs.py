"""Docs stay true to the code: the command reference is generated and current, every
command answers --help, database commands take --database-url, and the layers hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from labelloop.cli import app

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import gen_cli_docs  # noqa: E402

#: Commands that never open the database.
NO_DATABASE = {"version", "stats"}


def _paths() -> list[list[str]]:
    return [
        path[1:] for path, _ in gen_cli_docs._commands(typer.main.get_command(app), ["labelloop"])
    ]


def test_cli_reference_is_current() -> None:
    expected = gen_cli_docs.render()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == expected, (
        "docs/cli.md is stale: run .venv/bin/python tools/gen_cli_docs.py"
    )


@pytest.mark.parametrize("path", _paths(), ids=lambda p: " ".join(p) or "labelloop")
def test_every_command_has_help(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    leaf = not gen_cli_docs._subcommands(_command(path))
    if leaf and path and path[0] not in NO_DATABASE:
        assert "--database-url" in result.output


def _command(path: list[str]):  # type: ignore[no-untyped-def]
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = gen_cli_docs._subcommands(cmd)[name]
    return cmd


def test_no_arguments_prints_help() -> None:
    result = CliRunner().invoke(app, [])
    assert "Usage" in result.output


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


@pytest.mark.parametrize("package", ["labelloop.stats", "labelloop.formats"])
def test_pure_packages_import_no_database_web_or_cli(package: str) -> None:
    code = (
        f"import sys, {package}; "
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'typer', 'starlette') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{package} imports {out.stdout.strip()}"
