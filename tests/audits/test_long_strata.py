"""Stratum names fit their column (300 characters): many or long tags and segment values
made ``tag=a+b+...`` longer, a server error on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from labelloop.audits import service as audits
from labelloop.audits.models import AuditUnit
from labelloop.audits.population import MAX_STRATUM, _fit
from labelloop.projects.models import Item

from .conftest import OPERATOR, Demo


def test_long_names_are_cut_with_a_digest_that_keeps_them_apart() -> None:
    short = "tag=billing"
    assert _fit(short) == short
    a, b = "tag=" + "x" * 400 + "a", "tag=" + "x" * 400 + "b"
    assert len(_fit(a)) == len(_fit(b)) == MAX_STRATUM
    assert _fit(a) != _fit(b) and _fit(a).startswith("tag=xxx")


def test_a_run_stratified_by_many_long_tags_opens(demo: Demo) -> None:
    s = demo.session
    ids = s.scalars(select(Item.id).where(Item.project_id == demo.project.id).limit(40)).all()
    for n, item_id in enumerate(ids):
        tags = [f"campaign-{n % 4}-{'long-tag-name-' * 4}{k}" for k in range(12)]
        s.execute(update(Item).where(Item.id == item_id).values(tags=tags))
    policy = audits.create_policy(
        s,
        actor=OPERATOR,
        project=demo.project,
        name="by-tags",
        spec=audits.parse_spec(
            {"cadence": "manual", "strata": ["tag"], "sample_size": 60, "min_per_stratum": 2}
        ),
    )
    times = [a.submitted_at for a in demo.data.annotations if a.submitted_at is not None]
    run = audits.open_run(
        s,
        actor=OPERATOR,
        policy=policy,
        window_start=min(times),
        window_end=max(times) + timedelta(seconds=1),
    ).run
    longest = s.scalar(
        select(func.max(func.length(AuditUnit.stratum))).where(AuditUnit.run_id == run.id)
    )
    assert longest is not None and longest <= MAX_STRATUM
    strata = {x["stratum"] for x in run.plan["strata"]}
    assert len([x for x in strata if len(x) == MAX_STRATUM]) >= 4  # four long tag sets, apart
