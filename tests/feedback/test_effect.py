"""The effect of feedback, checked by simulation: a planted 30 % drop in recipients'
error is found at the 5 % level in at least 80 % of simulated studies, and no effect in
about 5 % (fixed seeds); and ``stats`` end to end on a database with a planted effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.feedback.effect import effect_of, stats
from labelloop.feedback.models import FeedbackItem, FeedbackNote

STUDIES = 2000  # the share of significant studies to about ±0.5 point
NOTES, ITEMS = 5, 200  # five recipients, 200 items of the category before and after


def _study(rng: np.random.Generator, drop: float) -> dict[str, object]:
    base = rng.uniform(0.15, 0.30, NOTES)  # each recipient's own error rate
    before = rng.binomial(ITEMS, base)
    after = rng.binomial(ITEMS, base * (1 - drop))
    return effect_of([[int(a), ITEMS, int(b), ITEMS] for a, b in zip(after, before, strict=True)])


def _share_significant(drop: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(STUDIES):
        p = _study(rng, drop)["p_value"]
        hits += p is not None and p < 0.05  # type: ignore[operator]
    return hits / STUDIES


def test_a_thirty_percent_drop_is_found() -> None:
    assert _share_significant(0.30, seed=1) >= 0.80


def test_no_effect_stays_quiet() -> None:
    assert _share_significant(0.0, seed=2) <= 0.06


def test_pooled_rates_and_intervals() -> None:
    from statsmodels.stats.proportion import proportion_confint

    out = effect_of([[10, 100, 20, 100], [5, 50, 10, 50]])
    lo, hi = proportion_confint(30, 150, method="wilson")
    assert out["before"] == {"rate": 0.2, "ci": [round(lo, 4), round(hi, 4)], "n": 150}
    assert out["after"]["rate"] == 0.1 and out["n_notes"] == 2
    assert out["p_value"] is not None and out["p_value"] < 0.05


def test_stats_end_to_end(session: Session, factories) -> None:  # type: ignore[no-untyped-def]
    """Two recipients confuse refund for billing 30 % of the time before their note and
    10 % after; gold labels are the reference."""
    project = factories.ProjectFactory(
        label_schema={"task_type": "single", "labels": ["billing", "refund", "other"]}
    )
    lead = factories.UserFactory()
    factories.MembershipFactory(user=lead, project=project, lead=True)
    sent = datetime(2026, 10, 1, tzinfo=UTC)
    rng = np.random.default_rng(3)
    notes = []
    for who in range(2):
        user = factories.UserFactory()
        factories.MembershipFactory(user=user, project=project)
        for n in range(120):
            after = n % 2 == 1
            item = factories.ItemFactory(project=project)
            factories.GoldLabelFactory(item=item, value="refund")
            wrong = rng.random() < (0.1 if after else 0.3)
            when = sent + timedelta(days=(1 + n % 20) if after else -(1 + n % 20))
            factories.AnnotationFactory(
                item=item, annotator=user, value="billing" if wrong else "refund", submitted_at=when
            )
        note = FeedbackNote(
            project_id=project.id,
            recipient_id=user.id,
            template="boundary_case",
            status="sent",
            message="refund, not billing",
            given="billing",
            expected="refund",
            source="manual",
            created_by="test",
            sent_by="user:lead",
            found_at=sent - timedelta(hours=30),
            sent_at=sent,
            acknowledged_at=sent + timedelta(hours=2 + who),
            items=[FeedbackItem(item_id=item.id, reference_source="gold")],
        )
        session.add(note)
        notes.append(note)
    session.flush()
    out = stats(session, actor=Actor.local("test"), project=project)
    assert (out["sent"], out["acknowledged"], out["ack_rate"]) == (2, 2, 1.0)
    assert out["latency_hours"]["finding_to_sent"]["median"] == 30.0
    assert out["latency_hours"]["sent_to_ack"]["median"] == 2.5
    (effect,) = out["effect"]
    assert effect["template"] == "boundary_case" and effect["n_notes"] == 2
    assert effect["before"]["n"] == effect["after"]["n"] == 120
    assert effect["after"]["rate"] < effect["before"]["rate"]
    assert effect["p_value"] < 0.05
    assert out["effect_by_sender"][0]["sender"] == "user:lead"
