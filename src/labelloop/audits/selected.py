"""Audit runs over a population the caller selected, not a policy's window.

:func:`labelloop.audits.service.open_run` reads its population from the policy's window
and filter; some populations are not a window: the re-check list of a guideline change
(:mod:`labelloop.guidelines.recheck`) is every past annotation a changed rule may
affect, chosen by guideline version and label. :func:`open_selected_run` opens a run of
a (manual-cadence) policy over such a population, with the same sample plan (the
policy's strata, allocation and sample size; the seed from the policy and the window
start), the same frozen units, the same blind, balanced reviewer assignment and the same
``audit_run.open`` trail event, so the run is reviewed, closed and reported like any
other.

Both open through :func:`labelloop.audits.service.open_population`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.audits.models import AuditPolicy, AuditRun
from labelloop.audits.population import Population
from labelloop.audits.service import OpenResult, open_population
from labelloop.errors import ValidationFailed


def open_selected_run(
    session: Session,
    *,
    actor: Actor,
    policy: AuditPolicy,
    pop: Population,
    window_start: datetime,
    window_end: datetime,
    notes: Sequence[str] = (),
    context: dict[str, Any] | None = None,
) -> OpenResult:
    """Open a run of ``policy`` whose population is ``pop``: draw, freeze and assign the
    sample. ``window_start``/``window_end`` label the run (the span of the population's
    submit times) and, with the policy, key it: when that run exists it is returned
    unchanged. ``notes`` go into the run's plan, ``context`` into its trail event.
    Everything happens in the caller's transaction; every check runs before the first
    write."""
    require(session, actor, Permission.AUDIT_MANAGE, project_id=policy.project_id)
    existing = session.scalar(
        select(AuditRun).where(
            AuditRun.policy_id == policy.id, AuditRun.window_start == window_start
        )
    )
    if existing is not None:
        return OpenResult(existing, False, [])
    if not len(pop):
        raise ValidationFailed(f"nothing to audit: the population of {policy.name!r} is empty")
    return open_population(
        session,
        actor=actor,
        policy=policy,
        pop=pop,
        window_start=window_start,
        window_end=window_end,
        trigger="manual",
        notes=notes,
        context=context,
    )
