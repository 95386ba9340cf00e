"""Policy administration services used by the lead pages and the API: switching a
policy on and off, its last run and next due time, and running it now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from labelloop import trail
from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy, AuditRun
from labelloop.errors import PermissionDenied, ValidationFailed

from .conftest import OPERATOR, Demo


def _policy(demo: Demo, name: str = "weekly", **spec: object) -> AuditPolicy:
    base: dict[str, object] = {
        "cadence": "0 6 * * MON",
        "window": "last_days",
        "window_days": 3660,
        "strata": ["annotator"],
        "sample_size": 20,
        "min_per_stratum": 0,
        "reviewers": ["demo.auditor", "demo.adjudicator"],
    }
    base.update(spec)
    return audits.create_policy(
        demo.session, actor=OPERATOR, project=demo.project, name=name, spec=audits.parse_spec(base)
    )


def _annotator(demo: Demo) -> Actor:
    user = accounts.get_user(demo.session, "amira.haddad")
    return Actor.for_user(user.id, user.username)


def test_set_policy_active_records_the_switch(demo: Demo) -> None:
    policy = _policy(demo)
    audits.set_policy_active(demo.session, actor=OPERATOR, policy=policy, active=False)
    assert not policy.active and audits.next_due(demo.session, policy) is None
    audits.set_policy_active(demo.session, actor=OPERATOR, policy=policy, active=False)  # no-op
    off = list(trail.service.query(demo.session, action="audit_policy.deactivate"))
    assert len(off) == 1 and off[0].before == {"active": True} and off[0].after == {"active": False}
    audits.set_policy_active(demo.session, actor=OPERATOR, policy=policy, active=True)
    assert policy.active
    assert len(list(trail.service.query(demo.session, action="audit_policy.activate"))) == 1
    with pytest.raises(PermissionDenied):
        audits.set_policy_active(demo.session, actor=_annotator(demo), policy=policy, active=False)


def test_next_due_follows_the_cron_after_the_last_window(demo: Demo) -> None:
    policy = _policy(demo)
    policy.created_at = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)  # a Wednesday
    assert audits.next_due(demo.session, policy) == datetime(2026, 1, 12, 6, 0, tzinfo=UTC)
    res = audits.open_run(
        demo.session,
        actor=OPERATOR,
        policy=policy,
        window_start=datetime(2026, 1, 5, 6, 0, tzinfo=UTC),
        window_end=datetime(2026, 3, 2, 6, 0, tzinfo=UTC),
        allow_empty=True,
    )
    assert audits.last_run(demo.session, policy) == res.run
    assert audits.next_due(demo.session, policy) == datetime(2026, 3, 9, 6, 0, tzinfo=UTC)
    manual = _policy(demo, "by-hand", cadence="manual")
    assert (
        audits.next_due(demo.session, manual) is None
        and audits.last_run(demo.session, manual) is None
    )


def test_run_now_opens_a_manual_run_ending_now(demo: Demo) -> None:
    policy = _policy(demo)
    now = max(a.submitted_at for a in demo.data.annotations if a.submitted_at) + timedelta(hours=1)
    res = audits.run_now(demo.session, actor=OPERATOR, policy=policy, now=now)
    assert res.created and res.run.trigger == "manual" and res.run.status == "open"
    assert res.run.window_end == now and res.run.window_start == now - timedelta(days=3660)
    assert res.run.sample_size == 20
    with pytest.raises(PermissionDenied):
        audits.run_now(demo.session, actor=_annotator(demo), policy=policy, now=now)
    empty = _policy(demo, "empty", population={"tags": ["no-such-tag"]})
    with pytest.raises(ValidationFailed, match="nothing to audit"):
        audits.run_now(demo.session, actor=OPERATOR, policy=empty, now=now)
    runs = demo.session.scalar(
        select(func.count()).select_from(AuditRun).where(AuditRun.policy_id == empty.id)
    )
    assert runs == 0
