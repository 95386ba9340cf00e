"""Validations per second of the compiled validator (the import path calls it per annotation).

Run: .venv/bin/python benchmarks/bench_validation.py
Target: >= 200,000 simple single-label validations per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from labelloop.projects.schemas import LabelSchema
from labelloop.projects.validation import compile_validator

N = 500_000


def rate(fn: Callable[[Any], object], values: list[Any]) -> float:
    t0 = time.perf_counter()
    for v in values:
        fn(v)
    return len(values) / (time.perf_counter() - t0)


def main() -> None:
    single = compile_validator(
        LabelSchema.from_dict({"task_type": "single", "labels": ["a", "b", "c", "d"]})
    )
    ruled = compile_validator(
        LabelSchema.from_dict(
            {
                "task_type": "single",
                "labels": ["a", "b", "c", "d"],
                "attributes": [{"name": "note", "type": "text"}],
                "rules": [
                    {"when": {"label": "d"}, "require_attributes": ["note"]},
                    {"when": {"active_seconds_below": 2}, "flag": "too_fast"},
                ],
            }
        )
    )
    multi = compile_validator(
        LabelSchema.from_dict({"task_type": "multi", "labels": ["a", "b", "c", "d"]})
    )
    spans = compile_validator(
        LabelSchema.from_dict({"task_type": "spans", "labels": ["ORG", "PER"]})
    )
    payload = {"text": "Apple hired Tim Cook."}
    region = [
        {"start": 0, "end": 5, "label": "ORG", "text": "Apple"},
        {"start": 12, "end": 20, "label": "PER"},
    ]
    values = ["a", "b", "c", "d"] * (N // 4)
    cases = {
        "single, no rules": (lambda v: single(v, active_seconds=5.0), values),
        "single, 2 rules": (lambda v: ruled(v, active_seconds=5.0), values),
        "multi, 2 labels": (lambda v: multi(v), [["a", "c"]] * (N // 5)),
        "spans, 2 regions + text": (lambda v: spans(v, payload=payload), [region] * (N // 10)),
    }
    for name, (fn, vals) in cases.items():
        print(f"{name:28s} {rate(fn, vals):>12,.0f} validations/s")


if __name__ == "__main__":
    main()
