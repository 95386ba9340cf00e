"""Statistics benchmarks: labelloop.stats side by side with the reference libraries.

Runs ``run_all(quick)`` of every ``benchmarks/stats_*.py`` module (agreement, inference,
label errors), each module in its own child process so that memory figures and JIT
warm-up of one module do not leak into another, and prints one Rich table:
benchmark, our seconds, the reference's seconds, the ratio (reference / ours: how many
times faster we are), the largest absolute difference of the results, the target from
issue 3 and whether it was met. Every module times each side as the median of several
runs in the same process, on the same generated data.

    .venv/bin/python benchmarks/bench_stats.py                  # full sizes (slow)
    .venv/bin/python benchmarks/bench_stats.py --quick          # small sizes, a smoke test
    .venv/bin/python benchmarks/bench_stats.py --only inference # one module (or a name substring)
    .venv/bin/python benchmarks/bench_stats.py --json out.json --markdown out.md

A module's row may carry ``target_ratio`` (at least that many times faster) or
``target_seconds`` (ours under that many seconds); otherwise the target is looked up
from the benchmark's name in :data:`TARGETS`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import multiprocessing as mp
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: Benchmark modules, in the order they run: short name -> module in benchmarks/.
MODULES: dict[str, str] = {
    "agreement": "stats_agreement",
    "inference": "stats_inference",
    "label_errors": "stats_label_errors",
}


@dataclass(frozen=True)
class Target:
    """A goal from issue 3, item 10: a speed-up over the reference or a time limit."""

    words: tuple[str, ...]  # every word must occur in the benchmark name (lower case)
    text: str
    ratio: float | None = None  # reference / ours at least this
    seconds: float | None = None  # ours at most this
    memory_mb: float | None = None  # peak memory at most this (when the row reports it)
    not_words: tuple[str, ...] = ()  # none of these may occur

    def matches(self, name: str) -> bool:
        low = name.lower()
        return all(w in low for w in self.words) and not any(w in low for w in self.not_words)


#: The targets of issue 3, item 10 (first match wins).
TARGETS: tuple[Target, ...] = (
    Target(("dawid",), "≥ 30× crowd-kit", ratio=30.0, not_words=("one-coin", "one coin")),
    Target(("bootstrap",), "< 10 s", seconds=10.0),
    Target(("alpha", "nominal"), "≥ 5× krippendorff", ratio=5.0),
    Target(("alpha", "interval"), "< 2 s, < 1 GB", seconds=2.0, memory_mb=1024.0),
    Target(("kappa", "pairwise"), "≥ 50× sklearn loop", ratio=50.0),
    Target(("kappa", "matrix"), "≥ 50× sklearn loop", ratio=50.0),
    Target(("confident",), "≥ 2× cleanlab", ratio=2.0),
)


def target_for(row: dict[str, Any]) -> tuple[str, bool | None]:
    """The target's text and whether the row meets it (None: no target)."""
    ours = row.get("ours_seconds")
    ratio = _ratio(row)
    if row.get("target_ratio") is not None:
        t = Target((), f"≥ {row['target_ratio']:g}×", ratio=float(row["target_ratio"]))
    elif row.get("target_seconds") is not None:
        t = Target((), f"< {row['target_seconds']:g} s", seconds=float(row["target_seconds"]))
    else:
        found = next((t for t in TARGETS if t.matches(str(row.get("name", "")))), None)
        if found is None:
            return "—", None
        t = found
    if row.get("error"):
        return t.text, False
    met = True
    if t.ratio is not None:
        met = ratio is not None and ratio >= t.ratio
    if t.seconds is not None:
        met = met and _finite(ours) and float(ours) < t.seconds
    if t.memory_mb is not None:
        mem = memory_mb(row)
        met = met and (mem is None or mem < t.memory_mb)  # unknown memory: judged on time only
    return t.text, met


def memory_mb(row: dict[str, Any]) -> float | None:
    """Peak memory in MB: a ``memory_mb`` key, else the first "peak ... N MB/GB" or
    "memory ... N MB/GB" figure in the notes (None when the row reports none)."""
    if _finite(row.get("memory_mb")):
        return float(row["memory_mb"])
    notes = str(row.get("notes") or "")
    found = re.search(r"(?:peak|memory)[^\d;,.]{0,30}?\+?(\d[\d,]*(?:\.\d+)?) ?([MG]B)", notes)
    if not found:
        return None
    value = float(found.group(1).replace(",", ""))
    return value * 1024.0 if found.group(2) == "GB" else value


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _ratio(row: dict[str, Any]) -> float | None:
    ratio = row.get("ratio")
    if _finite(ratio):
        return float(ratio)
    ours, ref = row.get("ours_seconds"), row.get("reference_seconds")
    if _finite(ours) and _finite(ref) and ours > 0:
        return float(ref) / float(ours)
    return None


# ------------------------------------------------------------------ running
def _run_module(module: str, quick: bool) -> list[dict[str, Any]]:
    """Child-process entry: import ``benchmarks/<module>.py`` and run it."""
    sys.path.insert(0, str(HERE))
    mod = importlib.import_module(module)
    rows = list(mod.run_all(quick))
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, str | bytes):  # numpy scalar
        try:
            return v.item()
        except (TypeError, ValueError):
            return v
    return v


def run(modules: list[str], quick: bool, *, in_process: bool = False) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    for short in modules:
        module = MODULES.get(short, short)
        if not (HERE / f"{module}.py").is_file():
            rows.append(
                {
                    "name": f"[{short}]",
                    "module": short,
                    "error": f"benchmarks/{module}.py not found",
                }
            )
            continue
        start = time.perf_counter()
        try:
            if in_process:
                got = _run_module(module, quick)
            else:
                with ctx.Pool(1) as pool:
                    got = pool.apply(_run_module, (module, quick))
        except Exception as exc:  # one failing module must not hide the others
            traceback.print_exc()
            rows.append(
                {"name": f"[{short}]", "module": short, "error": f"{type(exc).__name__}: {exc}"}
            )
            continue
        print(
            f"{short}: {len(got)} benchmarks in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        for row in got:
            row["module"] = short
            rows.append(row)
    for row in rows:
        row["target"], row["met"] = target_for(row)
    return rows


# ------------------------------------------------------------------ output
def _secs(x: Any) -> str:
    return f"{x:.3f}" if _finite(x) else "—"


def _rat(row: dict[str, Any]) -> str:
    r = _ratio(row)
    return f"{r:.1f}×" if r is not None else "—"


def _diff(x: Any) -> str:
    return f"{x:.1e}" if _finite(x) else "—"


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "NO")


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=max(160, Console().width))
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("benchmark")
    for col in ("ours s", "reference s", "ratio", "max |diff|"):
        table.add_column(col, justify="right")
    table.add_column("target")
    table.add_column("met?")
    for i, row in enumerate(rows, start=1):
        met = row["met"]
        style = "green" if met else ("red" if met is False else "")
        table.add_row(
            str(i),
            escape(str(row.get("name"))),
            _secs(row.get("ours_seconds")),
            _secs(row.get("reference_seconds")),
            _rat(row),
            _diff(row.get("max_abs_diff")),
            row["target"],
            f"[{style}]{_met(met)}[/]" if style else _met(met),
        )
    console.print(table)
    for i, row in enumerate(rows, start=1):
        note = row.get("error") or row.get("notes")
        if note:
            console.print(f"{i}. {note}", highlight=False, markup=False)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| # | benchmark | ours s | reference s | ratio | max \\|diff\\| | target | met? |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for i, row in enumerate(rows, start=1):
        name = str(row.get("name")).replace("|", "\\|")
        lines.append(
            f"| {i} | {name} | {_secs(row.get('ours_seconds'))} | {_secs(row.get('reference_seconds'))} "
            f"| {_rat(row)} | {_diff(row.get('max_abs_diff'))} | {row['target']} | {_met(row['met'])} |"
        )
    notes = [
        f"{i}. {str(row.get('error') or row.get('notes')).replace('|', '/')}"
        for i, row in enumerate(rows, start=1)
        if row.get("error") or row.get("notes")
    ]
    return "\n".join(lines) + ("\n\nNotes:\n\n" + "\n".join(notes) if notes else "") + "\n"


def environment() -> dict[str, Any]:
    import numpy

    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "numpy": numpy.__version__,
    }
    for dist in (
        "scipy",
        "numba",
        "krippendorff",
        "scikit-learn",
        "crowd-kit",
        "cleanlab",
        "statsmodels",
    ):
        try:
            from importlib.metadata import version

            info[dist] = version(dist)
        except Exception:
            info[dist] = None
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few repeats (a smoke test)"
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        help=f"run one module ({', '.join(MODULES)}) or keep benchmarks whose name contains NAME; repeatable",
    )
    parser.add_argument(
        "--json", metavar="OUT", type=Path, help="also write the rows and environment as JSON"
    )
    parser.add_argument(
        "--markdown", metavar="OUT", type=Path, help="also write the table as Markdown"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run modules in this process (debugging)"
    )
    args = parser.parse_args(argv)

    only = args.only or []
    modules = [m for m in MODULES if m in only] or list(MODULES)
    substrings = [o.lower() for o in only if o not in MODULES]
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rows = run(modules, args.quick, in_process=args.in_process)
    load_after = os.getloadavg()[0]
    if substrings:
        rows = [r for r in rows if any(s in str(r.get("name", "")).lower() for s in substrings)]
    elapsed = time.perf_counter() - started
    title = (
        f"labelloop.stats benchmarks ({'quick' if args.quick else 'full'} run, {elapsed:.0f} s, "
        f"load average {load_before:.1f} before, {load_after:.1f} after)"
    )
    print_table(rows, title)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "quick": args.quick,
            "seconds": elapsed,
            "environment": {
                **environment(),
                "load_average_before": load_before,
                "load_average_after": load_after,
            },
            "rows": rows,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows), encoding="utf-8")
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
