"""`labelloop.stats` re-exports one sorted public API and stays free of the app stack."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import labelloop.stats

#: Public module-level names deliberately left to their module (generic names).
MODULE_ONLY = {"FILTERS", "RANKINGS", "ALLOCATIONS", "DESIGNS", "summarize", "resample_counts"}
MODULES = ["agreement", "distributions", "inference", "intervals", "label_errors", "sampling"]


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_unique() -> None:
    names = labelloop.stats.__all__
    assert names == sorted(names, key=isort_key)
    assert len(names) == len(set(names))


def test_every_name_resolves() -> None:
    for name in labelloop.stats.__all__:
        obj = getattr(labelloop.stats, name)
        assert obj is not None, name
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__.startswith("labelloop.stats"), name


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_of_the_modules_is_reexported(module: str) -> None:
    mod = importlib.import_module(f"labelloop.stats.{module}")
    if hasattr(mod, "__all__"):
        public = set(mod.__all__)
    else:
        public = {
            n
            for n, v in vars(mod).items()
            if not n.startswith("_")
            and not isinstance(v, types.ModuleType)
            and (getattr(v, "__module__", None) == mod.__name__ or n.isupper())
        }
    missing = public - MODULE_ONLY - set(labelloop.stats.__all__)
    assert not missing, f"labelloop.stats does not re-export {sorted(missing)} from {module}"
    for name in public - MODULE_ONLY:
        assert getattr(labelloop.stats, name) is getattr(mod, name)


def test_import_does_not_pull_in_the_app_stack() -> None:
    code = (
        "import sys, labelloop.stats\n"
        "bad = sorted(m for m in ('sqlalchemy', 'fastapi', 'typer', 'starlette', 'pydantic', 'rich')"
        " if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import labelloop.stats imported {out.stdout.strip()}"
