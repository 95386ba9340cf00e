"""Audit use cases: policies, due windows, opening runs (frozen samples), reviews, closing.

Services take ``session`` and an :class:`~labelloop.accounts.actor.Actor`, check
permissions, append trail events, and never commit.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from croniter import croniter
from pydantic import ValidationError
from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.accounts.policy import require, roles_of
from labelloop.accounts.roles import Permission, Role, allows
from labelloop.audits.models import AuditAssignment, AuditPolicy, AuditReview, AuditRun, AuditUnit
from labelloop.audits.population import Population, label_key, load_population, stratum_codes
from labelloop.audits.schemas import PolicySpec, ReviewInput
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.validation import Violation
from labelloop.stats import sampling
from labelloop.store.base import rowcount, utcnow

#: Model-disagreement buckets (the ``model_disagreement`` stratum).
MODEL_BUCKETS = ("model disagrees", "model unsure", "model agrees", "no prediction")


# ----------------------------------------------------------------------------- policies
def _spec_errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'policy'}: {e['msg']}" for e in exc.errors()]


def parse_spec(data: dict[str, Any]) -> PolicySpec:
    """Validate a policy document; every problem is reported with its field path."""
    try:
        return PolicySpec.model_validate(data)
    except ValidationError as exc:
        problems = _spec_errors(exc)
        raise ValidationFailed(f"invalid audit policy: {'; '.join(problems)}", problems) from None


def _check_reviewers(session: Session, project_id: int, usernames: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for name in usernames:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            raise ValidationFailed(
                f"reviewer {name!r} does not exist (create it with `labelloop user create`)"
            )
        if not user.is_admin and not allows(
            roles_of(session, user.id, project_id), Permission.AUDIT_REVIEW
        ):
            raise ValidationFailed(
                f"reviewer {name!r} has no reviewing role in this project "
                f"(grant one: `labelloop user grant {name} --project P --role auditor`)"
            )
        ids[name] = user.id
    return ids


def create_policy(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    name: str,
    spec: PolicySpec,
    active: bool = True,
) -> AuditPolicy:
    """A new audit policy; an inactive one is kept but never opens runs on its cadence."""
    require(session, actor, Permission.AUDIT_MANAGE, project_id=project.id)
    name = name.strip()
    if not name:
        raise ValidationFailed(
            "policy name must not be empty", [Violation("name", "required", "give a name")]
        )
    if session.scalar(
        select(AuditPolicy.id).where(AuditPolicy.project_id == project.id, AuditPolicy.name == name)
    ):
        raise Conflict(f"project {project.name} already has an audit policy named {name!r}")
    _check_reviewers(session, project.id, spec.reviewers)
    policy = AuditPolicy(
        project_id=project.id, name=name, cadence=spec.cadence, spec=spec.as_json(), active=active
    )
    session.add(policy)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="audit_policy.create",
        entity_type="audit_policy",
        entity_id=policy.id,
        project_id=project.id,
        after={"name": name, "active": active, **spec.as_json()},
    )
    return policy


def update_policy(
    session: Session, *, actor: Actor, policy: AuditPolicy, spec: PolicySpec
) -> AuditPolicy:
    """Replace a policy's settings (past runs keep theirs); the same settings again
    change nothing."""
    require(session, actor, Permission.AUDIT_MANAGE, project_id=policy.project_id)
    if spec.as_json() == policy.spec:
        return policy  # nothing changes: no write, no trail event
    _check_reviewers(session, policy.project_id, spec.reviewers)
    before = dict(policy.spec)
    policy.spec, policy.cadence, policy.updated_at = spec.as_json(), spec.cadence, utcnow()
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="audit_policy.update",
        entity_type="audit_policy",
        entity_id=policy.id,
        project_id=policy.project_id,
        before=before,
        after=policy.spec,
    )
    return policy


def get_policy(session: Session, project: Project, name_or_id: str | int) -> AuditPolicy:
    stmt = select(AuditPolicy).where(AuditPolicy.project_id == project.id)
    key = str(name_or_id)
    stmt = (
        stmt.where(AuditPolicy.id == int(key))
        if key.isdigit()
        else stmt.where(AuditPolicy.name == key)
    )
    policy = session.scalar(stmt)
    if policy is None:
        raise NotFound(f"project {project.name} has no audit policy {name_or_id!r}")
    return policy


def list_policies(session: Session, project: Project | None = None) -> Sequence[AuditPolicy]:
    stmt = select(AuditPolicy).order_by(AuditPolicy.project_id, AuditPolicy.name)
    if project is not None:
        stmt = stmt.where(AuditPolicy.project_id == project.id)
    return session.scalars(stmt).all()


def get_run(session: Session, run_id: int) -> AuditRun:
    run = session.get(AuditRun, run_id)
    if run is None:
        raise NotFound(f"no audit run {run_id}")
    return run


def runs_of(session: Session, policy: AuditPolicy) -> Sequence[AuditRun]:
    return session.scalars(
        select(AuditRun).where(AuditRun.policy_id == policy.id).order_by(AuditRun.window_start)
    ).all()


# ------------------------------------------------------------------------------ windows
def due_windows(
    session: Session, policy: AuditPolicy, now: datetime
) -> list[tuple[datetime, datetime]]:
    """Windows whose cron fire time has passed and that have no run yet.

    A window ends at a fire time and starts at the previous fire time (``since_previous``)
    or ``window_days`` before its end (``last_days``). Missed windows are all returned
    (``catch_up``) or only the newest (``skip``). The first window of a new policy is the
    one ending at the first fire time after the policy was created.
    """
    spec = PolicySpec.model_validate(policy.spec)
    if spec.cadence == "manual" or not policy.active:
        return []
    last_end = session.scalar(
        select(func.max(AuditRun.window_end)).where(AuditRun.policy_id == policy.id)
    )
    anchor = last_end or policy.created_at
    it = croniter(spec.cadence, anchor)
    ends: list[datetime] = []
    while True:
        fire = it.get_next(datetime)
        if fire > now:
            break
        ends.append(fire)
        if len(ends) > 1000:  # a minutely cron left alone for a long time
            ends = ends[-1000:]
    if not ends:
        return []
    if spec.missed_windows == "skip":
        ends = ends[-1:]
    windows = []
    for end in ends:
        if spec.window == "last_days":
            start = end - timedelta(days=spec.window_days)
        else:
            prev = croniter(spec.cadence, end).get_prev(datetime)
            start = max(prev, last_end) if last_end and prev < last_end else prev
        windows.append((start, end))
    return windows


def manual_window(
    session: Session, policy: AuditPolicy, now: datetime
) -> tuple[datetime, datetime]:
    """The window of a run triggered by hand: since the previous run's end (or the last
    ``window_days``) up to now."""
    spec = PolicySpec.model_validate(policy.spec)
    last_end = session.scalar(
        select(func.max(AuditRun.window_end)).where(AuditRun.policy_id == policy.id)
    )
    if spec.window == "since_previous" and last_end is not None and last_end < now:
        return last_end, now
    return now - timedelta(days=spec.window_days), now


# ---------------------------------------------------------------------------- population
def snapshots(session: Session, annotation_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """What was audited, per annotation: value, attributes, annotator, times, version."""
    out: dict[int, dict[str, Any]] = {}
    ids = sorted(set(annotation_ids))
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        for a in session.execute(
            select(
                Annotation.id,
                Annotation.value,
                Annotation.attributes,
                Annotation.annotator_id,
                Annotation.source,
                Annotation.submitted_at,
                Annotation.active_seconds,
                Annotation.guideline_version,
            ).where(Annotation.id.in_(chunk))
        ):
            out[a.id] = {
                "value": a.value,
                "attributes": a.attributes or {},
                "annotator_id": a.annotator_id,
                "source": a.source,
                "submitted_at": a.submitted_at.isoformat() if a.submitted_at else None,
                "active_seconds": a.active_seconds,
                "guideline_version": a.guideline_version,
            }
    return out


# ---------------------------------------------------------------------------- opening
def _insert_run(session: Session, run: AuditRun) -> AuditRun:
    """Insert ``run``, or return the run another writer already opened for the same
    (policy, window start): the unique constraint decides, in a SAVEPOINT."""
    nested = session.begin_nested()
    try:
        session.add(run)
        session.flush()
    except IntegrityError:
        nested.rollback()
        existing = session.scalar(
            select(AuditRun).where(
                AuditRun.policy_id == run.policy_id, AuditRun.window_start == run.window_start
            )
        )
        if existing is None:
            raise
        return existing
    nested.commit()
    return run


@dataclass(frozen=True)
class OpenResult:
    run: AuditRun
    created: bool
    notes: list[str]


def run_seed(policy_id: int, window_start: datetime) -> int:
    """A seed derived from (policy, window start): re-opening after a crash draws the
    same sample."""
    digest = hashlib.sha256(f"{policy_id}:{window_start.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF  # fits a signed 32-bit column


def _risk_weight(spec: PolicySpec, stratum: str) -> float:
    weight = 1.0
    for part in stratum.split(" | "):
        if part in spec.risk_weights:
            weight *= spec.risk_weights[part]
    return spec.risk_weights.get(stratum, weight)


def _previous_stratum_rates(session: Session, policy: AuditPolicy) -> dict[str, float]:
    last = session.scalar(
        select(AuditRun)
        .where(
            AuditRun.policy_id == policy.id,
            AuditRun.status == "closed",
            AuditRun.report.is_not(None),
        )
        .order_by(AuditRun.window_start.desc())
        .limit(1)
    )
    if last is None or not last.report:
        return {}
    return {
        s["stratum"]: float(s["error_rate"]["value"])
        for s in last.report.get("error_rate", {}).get("by_stratum", [])
        if s.get("error_rate", {}).get("value") is not None
    }


def plan_sample(
    session: Session,
    policy: AuditPolicy,
    spec: PolicySpec,
    strata: npt.NDArray[np.int64],
    names: list[str],
    seed: int,
) -> tuple[sampling.SamplePlan, list[str]]:
    """Draw the sample for a population whose strata are ``names[strata[i]]``; the plan's
    strata are the integer codes. Returns notes for the report."""
    notes: list[str] = []
    population = len(strata)
    if spec.sample_size is not None:
        n = spec.sample_size
    else:
        assert spec.target_half_width is not None
        n = sampling.sample_size_for_proportion(
            spec.target_half_width,
            expected_rate=spec.expected_error_rate,
            confidence=spec.confidence,
            population_size=population,
        )
        notes.append(
            f"sample size {n} computed for a ±{spec.target_half_width:g} interval at "
            f"{spec.confidence:.0%} with an expected error rate of {spec.expected_error_rate:g}"
        )
    if n > population:
        notes.append(
            f"sample size {n} exceeds the population ({population}): every annotation is reviewed"
        )
        n = population
    if spec.allocation == "risk":
        per_stratum = np.asarray([_risk_weight(spec, name) for name in names], dtype=np.float64)
        return sampling.weighted_sample(per_stratum[strata], n, strata=strata, seed=seed), notes
    labels = [names[c] for c in np.unique(strata).tolist()]
    min_per = min(spec.min_per_stratum, n // max(len(labels), 1))
    if min_per < spec.min_per_stratum:
        notes.append(
            f"minimum per stratum lowered to {min_per}: {len(labels)} strata share {n} reviews"
        )
    std = None
    if spec.allocation == "neyman":
        prev = _previous_stratum_rates(session, policy)
        rates = [prev.get(s, spec.expected_error_rate) for s in labels]
        std = np.sqrt([max(p * (1 - p), 1e-4) for p in rates])
        notes.append(
            "Neyman allocation from "
            + ("the previous run's per-stratum error rates" if prev else "the expected error rate")
        )
    plan = sampling.stratified_sample(
        strata,
        n,
        allocation=spec.allocation,
        std=std,
        min_per_stratum=min_per,
        seed=seed,
    )
    return plan, notes


def _reviewer_ids(session: Session, project_id: int, spec: PolicySpec) -> dict[int, str]:
    if not spec.reviewers:
        # default pool: everyone holding a reviewing role in the project
        rows = session.execute(
            select(User.id, User.username)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.project_id == project_id,
                Membership.role.in_([Role.AUDITOR.value, Role.ADJUDICATOR.value]),
            )
            .distinct()
        ).all()
        return {uid: name for uid, name in rows}
    ids = _check_reviewers(session, project_id, spec.reviewers)
    return {uid: name for name, uid in ids.items()}


@dataclass(frozen=True, slots=True)
class _UnitRef:
    id: int
    annotation_id: int
    annotator_id: int


def _assign(
    units: Sequence[_UnitRef],
    reviewers: dict[int, str],
    double_fraction: float,
    rng: np.random.Generator,
) -> list[tuple[_UnitRef, int, bool]]:
    """Balanced assignment: each unit goes to the eligible reviewer with the fewest
    assignments so far (ties broken by a seeded order), never to its own annotator;
    a seeded ``double_fraction`` of units gets a second, different reviewer."""
    if not reviewers:
        raise ValidationFailed(
            "the reviewer pool is empty: add reviewers to the policy or grant the auditor role"
        )
    order = [int(x) for x in rng.permutation(sorted(reviewers))]
    load: Counter[int] = Counter({r: 0 for r in order})
    doubles = (
        set(
            rng.choice(len(units), size=round(double_fraction * len(units)), replace=False).tolist()
        )
        if units
        else set()
    )
    out: list[tuple[_UnitRef, int, bool]] = []
    for idx, unit in enumerate(units):
        eligible = [r for r in order if r != unit.annotator_id]
        if not eligible:
            raise ValidationFailed(
                f"no reviewer may review annotation {unit.annotation_id}: the pool holds only its annotator "
                f"({reviewers[unit.annotator_id]}); add another reviewer"
            )
        first = min(eligible, key=lambda r: load[r])
        load[first] += 1
        out.append((unit, first, False))
        if idx in doubles:
            others = [r for r in eligible if r != first]
            if others:
                second = min(others, key=lambda r: load[r])
                load[second] += 1
                out.append((unit, second, True))
    return out


def open_run(
    session: Session,
    *,
    actor: Actor,
    policy: AuditPolicy,
    window_start: datetime,
    window_end: datetime,
    trigger: str = "schedule",
    allow_empty: bool = False,
) -> OpenResult:
    """Open the run of ``policy`` for a window: draw, freeze and assign its sample.

    Idempotent: when the (policy, window start) run exists, it is returned unchanged. An
    empty population is an error, or with ``allow_empty`` (the scheduler) a run recorded
    closed with nothing to review, so the window is not retried. The
    whole opening happens in the caller's transaction, so a process killed mid-way leaves
    nothing behind and the next attempt starts over with the same seed.
    """
    require(session, actor, Permission.AUDIT_MANAGE, project_id=policy.project_id)
    existing = session.scalar(
        select(AuditRun).where(
            AuditRun.policy_id == policy.id, AuditRun.window_start == window_start
        )
    )
    if existing is not None:
        return OpenResult(existing, False, [])
    if window_end <= window_start:
        raise ValidationFailed(
            f"audit window is empty: {window_start.isoformat()} .. {window_end.isoformat()}"
        )
    project = session.get(Project, policy.project_id)
    assert project is not None
    spec = PolicySpec.model_validate(policy.spec)
    pop = load_population(
        session,
        project,
        spec,
        window_start,
        window_end,
        labels=bool({"label", "model_disagreement"} & set(spec.strata)),
        times="new_annotator" in spec.strata,
    )
    if not len(pop) and allow_empty:
        return _record_empty_run(session, actor, policy, spec, window_start, window_end, trigger)
    if not len(pop):
        raise ValidationFailed(
            f"nothing to audit: no annotations of project {project.name} pass policy {policy.name!r} "
            f"between {window_start:%Y-%m-%d %H:%M} and {window_end:%Y-%m-%d %H:%M} UTC"
        )
    return open_population(
        session,
        actor=actor,
        policy=policy,
        pop=pop,
        window_start=window_start,
        window_end=window_end,
        trigger=trigger,
    )


def open_population(
    session: Session,
    *,
    actor: Actor,
    policy: AuditPolicy,
    pop: Population,
    window_start: datetime,
    window_end: datetime,
    trigger: str,
    notes: Sequence[str] = (),
    context: dict[str, Any] | None = None,
) -> OpenResult:
    """Open the run of ``policy`` over ``pop`` (a window's population, or one a caller
    selected: :mod:`labelloop.audits.selected`): plan, freeze and assign its sample, and
    append the ``audit_run.open`` event (``notes`` go into the plan, ``context`` into the
    event). Every check runs before the first write; a concurrent opening of the same
    (policy, window start) is answered with the winner's run."""
    project = session.get(Project, policy.project_id)
    assert project is not None
    spec = PolicySpec.model_validate(policy.spec)
    reviewers = _reviewer_ids(session, project.id, spec)
    if not reviewers:
        raise ValidationFailed(
            "the reviewer pool is empty: add reviewers to the policy or grant the auditor role"
        )
    seed = run_seed(policy.id, window_start)
    codes, names = stratum_codes(session, project, spec, pop, window_start)
    plan, plan_notes = plan_sample(session, policy, spec, codes, names, seed)
    for idx in plan.indices.tolist():  # check before writing anything
        if not set(reviewers) - {int(pop.annotator_id[idx])}:
            raise ValidationFailed(
                f"no reviewer may review annotation {pop.annotation_id[idx]}: the pool holds only its "
                f"annotator ({reviewers[int(pop.annotator_id[idx])]}); add another reviewer"
            )
    all_notes = [*notes, *plan_notes]
    run = AuditRun(
        policy_id=policy.id,
        project_id=project.id,
        window_start=window_start,
        window_end=window_end,
        status="open",
        trigger=trigger,
        seed=seed,
        policy_snapshot={"name": policy.name, **spec.as_json()},
        population_size=len(pop),
        sample_size=plan.n,
        plan={
            "design": plan.design,
            "strata": [
                {"stratum": names[int(s)], "population": int(N), "sample": int(n)}
                for s, N, n in zip(
                    plan.strata.tolist(),
                    plan.population_sizes.tolist(),
                    plan.allocation.tolist(),
                    strict=True,
                )
            ],
            "notes": all_notes,
        },
    )
    winner = _insert_run(session, run)
    if winner is not run:
        return OpenResult(winner, False, [])
    _freeze(session, run, pop, plan, names, reviewers, spec.double_review_fraction)
    _await_reviews(session, run, policy.name)
    trail.service.append(
        session,
        actor=actor.name,
        action="audit_run.open",
        entity_type="audit_run",
        entity_id=run.id,
        project_id=project.id,
        after={
            "policy": policy.name,
            "window_start": window_start,
            "window_end": window_end,
            "trigger": trigger,
            "population": len(pop),
            "sample": plan.n,
            "seed": seed,
            **(context or {}),
        },
    )
    return OpenResult(run, True, all_notes)


def _await_reviews(session: Session, run: AuditRun, policy_name: str) -> None:
    """Start the run's ``audit_run`` deadline (:mod:`labelloop.escalation.paths`): its
    units wait on reviewers until the last is reviewed or the run closes."""
    from labelloop.escalation import service as escalation

    escalation.track_levels(
        session,
        project_id=run.project_id,
        subject="audit_run",
        subject_id=run.id,
        title=f"Audit run {run.id} ({policy_name}): {run.sample_size} units to review",
        link=f"/audits/runs/{run.id}",
        now=run.opened_at,
    )


def _reviews_done(session: Session, run: AuditRun) -> None:
    """Stop the run's deadline once nothing is left to review (or it closed)."""
    from labelloop.escalation import service as escalation

    if run.status == "closed" or not progress(session, run)["open"]:
        escalation.resolve(session, subject="audit_run", subject_id=run.id)


def _freeze(
    session: Session,
    run: AuditRun,
    pop: Population,
    plan: Any,
    names: list[str],
    reviewers: dict[int, str],
    double_fraction: float,
) -> None:
    """Insert the sample's units (with their snapshots) and its assignments."""
    frozen = snapshots(session, pop.annotation_id[plan.indices].tolist())
    pop.facts_for(pop.item_id[plan.indices].tolist())
    unit_rows: list[dict[str, Any]] = []
    for idx, stratum, pi in plan.rows():
        annotation_id, item_id = int(pop.annotation_id[idx]), int(pop.item_id[idx])
        unit_rows.append(
            {
                "run_id": run.id,
                "annotation_id": annotation_id,
                "item_id": item_id,
                "annotator_id": int(pop.annotator_id[idx]),
                "stratum": names[int(stratum)],
                "inclusion_probability": pi,
                "snapshot": {
                    **frozen[annotation_id],
                    "segments": pop.segments_of(item_id),
                    "tags": list(pop.tags_of(item_id)),
                },
            }
        )
    # Rows are inserted in a shuffled order, so neither unit nor assignment ids come in
    # stratum blocks (strata are often annotators: ids would reveal whose work a blind
    # reviewer judges). The shuffle draws from the operating system's entropy, not the
    # run's seed: the seed is shown with the run, and with the open code it would let a
    # reviewer undo a seeded shuffle. Nothing depends on the insertion order: the sample
    # and the reviewer assignment are the same as with any other.
    id_rng = np.random.default_rng(secrets.randbits(128))
    unit_order = id_rng.permutation(len(unit_rows)).tolist()
    # bulk inserts (thousands of rows); ids come back in parameter order
    inserted = session.scalars(
        insert(AuditUnit).returning(AuditUnit.id, sort_by_parameter_order=True),
        [unit_rows[i] for i in unit_order],
    ).all()
    unit_ids = [0] * len(unit_rows)
    for position, uid in zip(unit_order, inserted, strict=True):
        unit_ids[position] = uid
    units = [  # in plan order, as the balanced assignment has always seen them
        _UnitRef(uid, int(row["annotation_id"]), int(row["annotator_id"]))
        for uid, row in zip(unit_ids, unit_rows, strict=True)
    ]
    rng = np.random.default_rng(run.seed)
    assignments = [
        {"run_id": run.id, "unit_id": unit.id, "reviewer_id": reviewer_id, "double": double}
        for unit, reviewer_id, double in _assign(units, reviewers, double_fraction, rng)
    ]
    if assignments:
        session.execute(
            insert(AuditAssignment),
            [assignments[i] for i in id_rng.permutation(len(assignments)).tolist()],
        )


def _record_empty_run(
    session: Session,
    actor: Actor,
    policy: AuditPolicy,
    spec: PolicySpec,
    window_start: datetime,
    window_end: datetime,
    trigger: str,
) -> OpenResult:
    note = "no annotations in the window passed the policy's filter; nothing to review"
    run = AuditRun(
        policy_id=policy.id,
        project_id=policy.project_id,
        window_start=window_start,
        window_end=window_end,
        status="closed",
        trigger=trigger,
        seed=run_seed(policy.id, window_start),
        policy_snapshot={"name": policy.name, **spec.as_json()},
        plan={"design": "stratified", "strata": [], "notes": [note]},
        report=None,
        closed_at=utcnow(),
    )
    winner = _insert_run(session, run)
    if winner is not run:
        return OpenResult(winner, False, [])
    trail.service.append(
        session,
        actor=actor.name,
        action="audit_run.empty",
        entity_type="audit_run",
        entity_id=run.id,
        project_id=policy.project_id,
        after={"policy": policy.name, "window_start": window_start, "window_end": window_end},
    )
    return OpenResult(run, True, [note])


# ---------------------------------------------------------------------------- reviews
@dataclass(frozen=True)
class QueueEntry:
    """What a reviewer sees for one assignment. ``label`` and ``annotator`` are ``None``
    when the run is blind."""

    assignment_id: int
    unit_id: int
    item_external_id: str
    payload: dict[str, Any]
    segments: dict[str, Any]
    label: Any
    annotator: str | None
    double: bool


def queue_keys(
    seed: int, reviewer_ids: Sequence[int], assignment_ids: Sequence[int]
) -> npt.NDArray[np.uint64]:
    """Sort keys of assignments in their reviewers' queues: a keyed mix of (run seed,
    reviewer, assignment id).

    Each reviewer's queue is served in ascending key order, which is the same on every
    call (a reload, on the page or in the CLI, shows the same next item), differs
    between reviewers, and carries no stratum (served by id or by stratum, a blind
    reviewer would get one annotator's work in a block). The key of a reviewer is a
    hash of (seed, reviewer); the SplitMix64 finaliser over ``id XOR key`` is a bijection,
    so one reviewer's keys never tie. Vectorised: 10,000 keys take about a millisecond.
    """
    reviewers, which = np.unique(np.asarray(reviewer_ids, dtype=np.int64), return_inverse=True)
    per_reviewer = np.asarray(
        [
            int.from_bytes(
                hashlib.blake2b(
                    f"labelloop.audit-queue:{seed}:{r}".encode(), digest_size=8
                ).digest(),
                "big",
            )
            for r in reviewers.tolist()
        ],
        dtype=np.uint64,
    )
    x = np.asarray(assignment_ids, dtype=np.int64).astype(np.uint64) ^ per_reviewer[which]
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)  # uint64 arithmetic wraps: that is the mix
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _queue_owner(actor: Actor, reviewer_id: int | None) -> int | None:
    """Whose queue is served: the actor's own, unless a system actor names a reviewer
    (``None``: a system actor's view of every reviewer's open assignments)."""
    return reviewer_id if (actor.system and reviewer_id is not None) else actor.user_id


def _open_assignments(run: AuditRun, who: int | None) -> Select[int, int]:
    """(id, reviewer) of the run's assignments without a review, of ``who`` if given."""
    stmt = (
        select(AuditAssignment.id, AuditAssignment.reviewer_id)
        .outerjoin(AuditReview, AuditReview.assignment_id == AuditAssignment.id)
        .where(AuditAssignment.run_id == run.id, AuditReview.id.is_(None))
    )
    if who is not None:
        stmt = stmt.where(AuditAssignment.reviewer_id == who)
    return stmt


def queue_length(
    session: Session, *, actor: Actor, run: AuditRun, reviewer_id: int | None = None
) -> int:
    """How many open assignments :func:`review_queue` would serve, without loading them."""
    require(session, actor, Permission.AUDIT_REVIEW, project_id=run.project_id)
    stmt = _open_assignments(run, _queue_owner(actor, reviewer_id)).subquery()
    return int(session.scalar(select(func.count()).select_from(stmt)) or 0)


def review_queue(
    session: Session,
    *,
    actor: Actor,
    run: AuditRun,
    reviewer_id: int | None = None,
    limit: int | None = None,
) -> list[QueueEntry]:
    """Open assignments of a reviewer (the actor's own unless a system actor names one),
    in the order of :func:`queue_keys`; ``limit`` serves only the first ones.

    Only (id, reviewer) pairs are read to order the queue; items and units are loaded
    for the served entries alone, so the next item of a big run costs two small queries.
    """
    require(session, actor, Permission.AUDIT_REVIEW, project_id=run.project_id)
    blind = bool(run.policy_snapshot.get("blind", True))
    open_rows = session.execute(_open_assignments(run, _queue_owner(actor, reviewer_id))).all()
    ids = [row.id for row in open_rows]
    keys = queue_keys(run.seed, [row.reviewer_id for row in open_rows], ids)
    order = np.argsort(keys, kind="stable")[: None if limit is None else max(limit, 0)]
    served = [ids[i] for i in order.tolist()]
    columns = [
        AuditAssignment.id,
        AuditAssignment.double,
        AuditUnit.id.label("unit_id"),
        Item.external_id,
        Item.payload,
        Item.segments,
    ]
    if not blind:  # a blind queue never even reads the label or the annotator
        columns += [AuditUnit.snapshot, AuditUnit.annotator_id]
    rows: dict[int, Any] = {}
    for start in range(0, len(served), 2000):
        chunk = served[start : start + 2000]
        for row in session.execute(
            select(*columns)
            .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
            .join(Item, Item.id == AuditUnit.item_id)
            .where(AuditAssignment.id.in_(chunk))
        ):
            rows[row.id] = row
    names: dict[int, str] = {}
    if not blind and rows:
        annotators = {row.annotator_id for row in rows.values()}
        names = {
            uid: name
            for uid, name in session.execute(
                select(User.id, User.username).where(User.id.in_(annotators))
            )
        }
    return [
        QueueEntry(
            assignment_id=row.id,
            unit_id=row.unit_id,
            item_external_id=row.external_id,
            payload=row.payload,
            segments=row.segments or {},
            label=None if blind else row.snapshot.get("value"),
            annotator=None if blind else names.get(row.annotator_id),
            double=row.double,
        )
        for row in (rows[aid] for aid in served)
    ]


def record_review(
    session: Session, *, actor: Actor, assignment_id: int, review: ReviewInput
) -> AuditReview:
    """Store a reviewer's finding on one assignment of an open run.

    In a blind run the reviewer gives their own label (``corrected_value``) and the
    verdict is derived by comparing it with the frozen label; ``unsure`` stays unsure.
    """
    assignment = session.get(AuditAssignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no audit assignment {assignment_id}")
    run = session.get(AuditRun, assignment.run_id)
    assert run is not None
    require(session, actor, Permission.AUDIT_REVIEW, project_id=run.project_id)
    if not actor.system and actor.user_id != assignment.reviewer_id:
        raise PermissionDenied(f"assignment {assignment_id} belongs to another reviewer")
    if run.status != "open":
        raise Conflict(f"audit run {run.id} is {run.status}; reviews are closed")
    if session.scalar(select(AuditReview.id).where(AuditReview.assignment_id == assignment_id)):
        raise Conflict(f"assignment {assignment_id} has already been reviewed")
    unit = session.get(AuditUnit, assignment.unit_id)
    assert unit is not None
    categories = run.policy_snapshot.get("error_categories") or []
    if review.error_category is not None and review.error_category not in categories:
        raise ValidationFailed(
            f"unknown error category {review.error_category!r}; one of: {', '.join(categories)}"
        )
    verdict = review.verdict
    corrected = review.corrected_value
    if corrected is not None:
        from labelloop.projects.service import schema_of
        from labelloop.projects.validation import validate_value

        project = session.get(Project, run.project_id)
        assert project is not None
        problems = [
            v
            for v in validate_value(schema_of(project), corrected, field="corrected_value")
            if v.severity == "error"
        ]
        if problems:
            raise ValidationFailed(
                "corrected label is not valid: " + "; ".join(str(p) for p in problems), problems
            )
        if verdict != "unsure" and run.policy_snapshot.get("blind", True):
            verdict = (
                "correct"
                if label_key(corrected) == label_key(unit.snapshot.get("value"))
                else "incorrect"
            )
    if verdict == "incorrect" and corrected is None:
        raise ValidationFailed("an 'incorrect' verdict needs the corrected label")
    row = AuditReview(
        run_id=run.id,
        assignment_id=assignment.id,
        unit_id=unit.id,
        reviewer_id=assignment.reviewer_id,
        verdict=verdict,
        corrected_value=corrected if verdict == "incorrect" else None,
        error_category=(review.error_category or "unclassified")
        if verdict == "incorrect"
        else None,
        severity=(review.severity or "medium") if verdict == "incorrect" else None,
        rule_ref=review.rule_ref,
        comment=review.comment,
        active_seconds=review.active_seconds,
    )
    session.add(row)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="audit_review.create",
        entity_type="audit_review",
        entity_id=row.id,
        project_id=run.project_id,
        after={
            "run": run.id,
            "assignment": assignment.id,
            "verdict": row.verdict,
            "corrected_value": row.corrected_value,
            "error_category": row.error_category,
            "severity": row.severity,
            "rule_ref": row.rule_ref,
            "comment": row.comment,
        },
    )
    _reviews_done(session, run)
    return row


def progress(session: Session, run: AuditRun) -> dict[str, int]:
    total = session.scalar(select(func.count()).where(AuditAssignment.run_id == run.id)) or 0
    done = session.scalar(select(func.count()).where(AuditReview.run_id == run.id)) or 0
    return {"assignments": int(total), "reviewed": int(done), "open": int(total - done)}


def previous_closed_run(session: Session, run: AuditRun) -> AuditRun | None:
    return session.scalar(
        select(AuditRun)
        .where(
            AuditRun.policy_id == run.policy_id,
            AuditRun.status == "closed",
            AuditRun.window_start < run.window_start,
            AuditRun.report.is_not(None),
        )
        .order_by(AuditRun.window_start.desc())
        .limit(1)
    )


def close_run(
    session: Session, *, actor: Actor, run: AuditRun, allow_unreviewed: bool = False
) -> AuditRun:
    """Close a run and store its report. Refuses while assignments are open unless
    ``allow_unreviewed`` (their units are then reported as unreviewed)."""
    from labelloop.audits.report import compute_report

    require(session, actor, Permission.AUDIT_MANAGE, project_id=run.project_id)
    if run.status == "closed":
        raise Conflict(f"audit run {run.id} is already closed")
    state = progress(session, run)
    if state["open"] and not allow_unreviewed:
        raise Conflict(
            f"audit run {run.id} has {state['open']} of {state['assignments']} reviews outstanding; "
            "finish them or close with --allow-unreviewed"
        )
    previous = previous_closed_run(session, run)
    # claim the close first: two closes at once cannot both report (nor draft feedback)
    claimed = rowcount(
        session.execute(
            update(AuditRun)
            .where(AuditRun.id == run.id, AuditRun.status != "closed")
            .values(status="closed")
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        raise Conflict(f"audit run {run.id} was closed meanwhile")
    session.refresh(run)
    run.report = compute_report(session, run, previous=previous)
    run.closed_at = utcnow()
    session.flush()
    overall = run.report["error_rate"]["overall"]
    trail.service.append(
        session,
        actor=actor.name,
        action="audit_run.close",
        entity_type="audit_run",
        entity_id=run.id,
        project_id=run.project_id,
        after={
            "reviewed": state["reviewed"],
            "error_rate": overall.get("value"),
            "ci": overall.get("ci"),
        },
    )
    _reviews_done(session, run)
    from labelloop.feedback.lifecycle import after_run_closed

    after_run_closed(session, actor=actor, run=run)
    return run


def trend(session: Session, policy: AuditPolicy) -> list[dict[str, Any]]:
    """Per closed cycle: error rate, alpha, coverage and turnaround with CIs, and whether
    each changed significantly from the cycle before (see report.delta_test)."""
    from labelloop.audits.report import delta_test

    rows: list[dict[str, Any]] = []
    prev: dict[str, Any] | None = None
    for run in runs_of(session, policy):
        if run.status != "closed" or not run.report:
            continue
        rep = run.report
        conf = rep["run"]["confidence"]
        reviews = rep["reviews"]
        row = {
            "run": run.id,
            "window_start": run.window_start.isoformat(),
            "window_end": run.window_end.isoformat(),
            "population": run.population_size,
            "sample": run.sample_size,
            "error_rate": rep["error_rate"]["overall"],
            "krippendorff_alpha": rep.get("agreement", {}).get("krippendorff_alpha"),
            "gold_accuracy": rep.get("gold", {}).get("accuracy"),
            "coverage": {
                "reviewed_share": round(reviews["judged"] / reviews["units"], 4)
                if reviews["units"]
                else None,
                "edge_case_share_of_audited": rep.get("edge_cases", {}).get("share_of_audited"),
            },
            "turnaround": rep.get("turnaround"),
            "patterns": len(rep.get("patterns", [])),
        }
        if prev is not None:
            row["change"] = {
                "error_rate": delta_test(row["error_rate"], prev["error_rate"], conf),
                "krippendorff_alpha": delta_test(
                    row["krippendorff_alpha"], prev["krippendorff_alpha"], conf
                ),
            }
        else:
            row["change"] = None
        rows.append(row)
        prev = row
    return rows


# ------------------------------------------------------------------ policy pages and API
def set_policy_active(
    session: Session, *, actor: Actor, policy: AuditPolicy, active: bool
) -> AuditPolicy:
    """Switch a policy's schedule on or off (an inactive policy is never due; it can
    still be run by hand)."""
    require(session, actor, Permission.AUDIT_MANAGE, project_id=policy.project_id)
    if policy.active == active:
        return policy
    before = policy.active
    policy.active, policy.updated_at = active, utcnow()
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="audit_policy.activate" if active else "audit_policy.deactivate",
        entity_type="audit_policy",
        entity_id=policy.id,
        project_id=policy.project_id,
        before={"active": before},
        after={"active": active},
    )
    return policy


def last_run(session: Session, policy: AuditPolicy) -> AuditRun | None:
    """The policy's run with the latest window, if any."""
    return session.scalar(
        select(AuditRun)
        .where(AuditRun.policy_id == policy.id)
        .order_by(AuditRun.window_start.desc(), AuditRun.id.desc())
        .limit(1)
    )


def next_due(session: Session, policy: AuditPolicy) -> datetime | None:
    """When the scheduler next opens a run of the policy: the first cron fire after the
    last run's window end (or the policy's creation). A time in the past means a window
    is due now. ``None`` for manual or inactive policies."""
    if policy.cadence == "manual" or not policy.active:
        return None
    last_end = session.scalar(
        select(func.max(AuditRun.window_end)).where(AuditRun.policy_id == policy.id)
    )
    fire: datetime = croniter(policy.cadence, last_end or policy.created_at).get_next(datetime)
    return fire


def run_now(
    session: Session, *, actor: Actor, policy: AuditPolicy, now: datetime | None = None
) -> OpenResult:
    """Open a run by hand for the window ending ``now`` (see :func:`manual_window`), as
    ``labelloop audit run --now`` does."""
    require(session, actor, Permission.AUDIT_MANAGE, project_id=policy.project_id)
    moment = now or utcnow()
    start, end = manual_window(session, policy, moment)
    return open_run(
        session, actor=actor, policy=policy, window_start=start, window_end=end, trigger="manual"
    )
