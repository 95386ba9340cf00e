"""The demo's three audit cycles find exactly the planted problems."""

from __future__ import annotations

import pytest

from labelloop.demo import audits as demo_audits
from labelloop.demo.builder import build_demo
from labelloop.demo.simulate import simulate
from labelloop.projects.service import get_project

from .conftest import OPERATOR


@pytest.mark.slow
def test_patterns_name_the_planted_annotators_and_nobody_else(session, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the simulation check runs once, on the embedded store")
    data = simulate(7, 2000)
    summary = build_demo(session, actor=OPERATOR, seed=7, n_items=2000)
    project = get_project(session, summary.project)
    cycles = demo_audits.run_cycles(session, actor=OPERATOR, project=project, data=data)
    assert len(cycles) == 3
    from labelloop.audits.models import AuditRun

    planted = {
        p.username: p.kind for p in data.annotators if p.kind in ("confuser", "speeder", "fatigued")
    }
    flagged: dict[str, set[str]] = {}
    for cycle in cycles:
        run = session.get(AuditRun, cycle.run_id)
        for pattern in run.report["patterns"]:
            if pattern["dimension"] == "annotator":
                flagged.setdefault(pattern["group"], set()).add("annotator")
            elif pattern["dimension"] in ("fatigue", "annotator confusion"):
                flagged.setdefault(pattern["annotator"], set()).add(pattern["dimension"])
    assert set(flagged) == set(planted), flagged
    fatigued = next(u for u, k in planted.items() if k == "fatigued")
    assert "fatigue" in flagged[fatigued]
    confuser = next(u for u, k in planted.items() if k == "confuser")
    assert "annotator confusion" in flagged[confuser]
    # guideline 1.1 (refund vs billing clarified) comes into force during cycle 2: the
    # reports break the cycles down by version, and under 1.1 the confuser is not flagged
    reports = [session.get(AuditRun, c.run_id).report for c in cycles]
    versions = [[v["version"] for v in r["by_guideline_version"]] for r in reports]
    assert versions == [["1.0"], ["1.0", "1.1"], ["1.1"]]
    # a cycle under one version: its breakdown is the whole report's figures
    for r in (reports[0], reports[-1]):
        (only,) = r["by_guideline_version"]
        assert only["krippendorff_alpha"]["value"] == r["agreement"]["krippendorff_alpha"]["value"]
        assert only["reviewed"] == r["reviews"]["judged"]
        assert only["error_rate"]["value"] == pytest.approx(
            r["error_rate"]["overall"]["value"], abs=1e-9
        )
    last = {p.get("annotator") or p["group"] for p in reports[-1]["patterns"]}
    assert confuser not in last
