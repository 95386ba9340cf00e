"""Write docs/cli.md from the command tree, so the reference never drifts from the code.

Usage: .venv/bin/python tools/gen_cli_docs.py [--check]
(``tests/test_docs.py`` runs the check.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer.main

from labelloop.cli import app

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

HEADER = """# Command reference

Generated from the code by `tools/gen_cli_docs.py`; `make test` fails when it is stale.
Every command takes `--database-url` (or `LABELLOOP_DATABASE_URL`; default
`sqlite:///./labelloop.db`) where it touches the database. Errors go to stderr with exit
code 1; usage errors exit with 2.
"""


def _subcommands(cmd: Any) -> dict[str, Any]:
    return dict(getattr(cmd, "commands", None) or {})


def _commands(group: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    out = [(path, group)]
    for name, sub in sorted(_subcommands(group).items()):
        out += _commands(sub, [*path, name])
    return out


def _cell(text: str, pipe: str = "\\|") -> str:
    """Table-safe text: no line breaks, pipes escaped (or replaced)."""
    return text.replace("|", pipe).replace("\n", " ")


def render() -> str:
    root = typer.main.get_command(app)
    parts = [HEADER]
    for path, cmd in _commands(root, ["labelloop"]):
        if cmd.hidden:
            continue
        ctx = cmd.context_class(cmd, info_name=" ".join(path), terminal_width=100)
        title = " ".join(path)
        parts.append(f"\n## `{title}`\n")
        if cmd.help:
            parts.append(cmd.help.strip() + "\n")
        usage = cmd.collect_usage_pieces(ctx)
        parts.append(f"```\n{title} {' '.join(usage)}\n```\n")
        rows = []
        for param in cmd.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                if getattr(param, "param_type_name", "") == "argument":
                    rows.append((param.human_readable_name, "argument"))
                continue
            rows.append((record[0], record[1] or ""))
        if rows:
            parts.append("| option | meaning |\n|---|---|")
            parts += [f"| `{_cell(name)}` | {_cell(text, '/')} |" for name, text in rows]
            parts.append("")
        subs = [f"`{name}`" for name, sub in sorted(_subcommands(cmd).items()) if not sub.hidden]
        if subs:
            parts.append("Commands: " + ", ".join(subs) + "\n")
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run .venv/bin/python tools/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
