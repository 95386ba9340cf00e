"""The re-check list of a guideline change: past annotations a changed rule may affect.

**Which rules.** For the change from version ``from`` to version ``to`` (default: the
current version and the one published before it), the *concerned rules* are those
added, removed or changed between the two (or only ``rule``, when given). Their label
set is each rule's ``labels`` in either version plus the labels of its exemplars in
either version (the exemplars' neighbours by label).

**Which annotations.** Those made under a version older than ``to``, or under none (in
the order of :func:`~labelloop.guidelines.schemas.version_order`: free text from an
import counts as older than any published number), that

* are on an item that a concerned rule of ``to`` shows as an exemplar, with a label
  other than the exemplar's (the annotator would now be told otherwise), or
* concern a label of the set. A value concerns a label when it is that label (single
  label, ordinal and text tasks: the value as text), contains it (multi-label: the
  list holds it) or has a region labelled with it (spans).

**Order** (likeliest affected first), by reason, then newest first (submit time;
annotations without one last), then by id, newest first:

1. ``exemplar``: on an exemplar item of ``to`` with another label;
2. ``rule_label``: concerns a label the concerned rules decide between (their
   ``labels``);
3. ``exemplar_label``: concerns only labels of the concerned rules' exemplars.

The list is computed on columns: :func:`labelloop.analytics.dashboard.read_columns`
reads the project's annotations (those made under ``to`` or later are left out in SQL,
and in single-label projects those with another label, off the exemplar items, too);
every test runs once per distinct label value, then on numpy arrays.

**Sending** (:func:`send`, ``audit.manage``) opens an audit run whose population is
the whole list and whose sample is a seeded simple random sample of it (default
:data:`DEFAULT_SAMPLE`), through a manual-cadence policy named after the change
(``Re-check R4 (1.0 → 1.1)``), created on the first send (one that exists without a
run is used, with its settings). Reviewers review it blind in their queue like any
audit run. The policy holds one run: sending the same re-check again returns it. A
refused send (an empty list, no reviewer) writes nothing.

Listing needs ``data.export`` (leads and model accounts): the list shows annotations'
labels and annotators, which auditors reviewing blind and annotators never see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.analytics.dashboard import Columns, read_columns
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy, AuditRun
from labelloop.audits.population import Population, label_key
from labelloop.audits.selected import open_selected_run
from labelloop.errors import NotFound, ValidationFailed
from labelloop.guidelines import service
from labelloop.guidelines.diff import diff_documents
from labelloop.guidelines.models import GuidelineVersion
from labelloop.guidelines.schemas import RULE_KEY, VERSION, GuidelineDoc, RuleDoc, version_order
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.validation import Violation

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_SAMPLE = 200
MAX_SAMPLE = 10_000
#: Why an annotation is listed, likeliest affected first (the order of the list).
REASONS = ("exemplar", "rule_label", "exemplar_label")
_UNLISTED = len(REASONS)


@dataclass(frozen=True)
class RuleCount:
    """A concerned rule: how it changed, the labels it concerns and how many listed
    annotations concern it (by label, or on one of its exemplar items)."""

    id: str
    title: str
    change: str  # added | removed | changed | unchanged
    labels: tuple[str, ...]
    exemplar_labels: tuple[str, ...]
    annotations: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "change": self.change,
            "labels": list(self.labels),
            "exemplar_labels": list(self.exemplar_labels),
            "annotations": self.annotations,
        }


@dataclass(frozen=True)
class Entry:
    """One listed annotation."""

    annotation_id: int
    item: str  # the item's external id
    annotator: str
    label: Any
    guideline_version: str | None
    submitted_at: datetime | None
    reason: str
    rules: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.annotation_id,
            "item": self.item,
            "annotator": self.annotator,
            "label": self.label,
            "guideline_version": self.guideline_version,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "reason": self.reason,
            "rules": list(self.rules),
        }


@dataclass(frozen=True)
class Recheck:
    """The re-check list of the change ``old`` → ``new``: counts, and its first entries."""

    old: str | None
    new: str
    rule: str | None
    total: int
    rules: tuple[RuleCount, ...]
    labels: dict[str, int]
    reasons: dict[str, int]
    entries: tuple[Entry, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.old,
            "to": self.new,
            "rule": self.rule,
            "total": self.total,
            "rules": [r.as_json() for r in self.rules],
            "labels": self.labels,
            "reasons": self.reasons,
            "annotations": [e.as_json() for e in self.entries],
            "truncated": len(self.entries) < self.total,
        }


@dataclass(frozen=True)
class Sent:
    """The audit run a re-check list was sent to (``created``: opened by this call)."""

    run: AuditRun
    policy: AuditPolicy
    created: bool
    notes: list[str] = field(default_factory=list)


# -- the change -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    id: str
    title: str
    change: str
    labels: frozenset[str]  # the rule's labels, either version
    neighbours: frozenset[str]  # its exemplars' labels, either version
    exemplars: dict[str, frozenset[str]]  # in ``to``: item external id -> label names


@dataclass(frozen=True)
class _Change:
    old: str | None
    new: GuidelineVersion
    rule: str | None
    rules: tuple[_Rule, ...]

    @property
    def labels(self) -> frozenset[str]:
        return frozenset().union(*(r.labels for r in self.rules))

    @property
    def neighbours(self) -> frozenset[str]:
        return frozenset().union(*(r.neighbours for r in self.rules))


def value_labels(value: Any) -> frozenset[str]:
    """The labels a stored label value concerns: a list's names and its regions'
    labels; any other value as text (:func:`~labelloop.audits.population.label_key`)."""
    if isinstance(value, list):
        out: set[str] = set()
        for part in value:
            if isinstance(part, str):
                out.add(part)
            elif isinstance(part, dict) and isinstance(part.get("label"), str):
                out.add(part["label"])
        return frozenset(out)
    return frozenset({label_key(value)})


def _key_labels(key: str, task_type: str) -> frozenset[str]:
    """:func:`value_labels` of a value given as its label key (``Columns.categories``):
    multi-label and span values are JSON lists, any other is the label itself."""
    if task_type in ("multi", "spans") and key.startswith("["):
        try:
            return value_labels(json.loads(key))
        except ValueError:
            pass
    return frozenset({key})


def _check_args(rule: str | None, old: str | None, new: str | None, limit: int) -> None:
    problems = [
        Violation(name, "invalid", "a published version is MAJOR.MINOR (1.2)")
        for name, number in (("from", old), ("to", new))
        if number is not None and not VERSION.fullmatch(number)
    ]
    if rule is not None and not RULE_KEY.fullmatch(rule):
        problems.append(Violation("rule", "invalid", "a rule id such as R12"))
    if not 0 <= limit <= MAX_LIMIT:
        problems.append(Violation("limit", "range", f"between 0 and {MAX_LIMIT}"))
    if problems:
        raise ValidationFailed("invalid re-check request", problems)


def _resolve(
    session: Session,
    actor: Actor,
    project: Project,
    rule: str | None,
    old_number: str | None,
    new_number: str | None,
) -> _Change:
    """The two versions and the concerned rules (NotFound for a version or rule that
    does not exist)."""
    new = service.get_version(session, actor=actor, project=project, number=new_number)
    if old_number is None:
        earlier = [
            v
            for v in service.history(session, actor=actor, project=project)
            if version_order(v.number) < version_order(new.number)
        ]
        old = earlier[0] if earlier else None
    else:
        old = service.get_version(session, actor=actor, project=project, number=old_number)
        if version_order(old.number) >= version_order(new.number):
            raise ValidationFailed(
                f"version {old.number} is not older than {new.number}",
                [Violation("from", "order", f"must be older than {new.number}")],
            )
    new_doc = service.document(session, new)
    old_doc = service.document(session, old) if old else GuidelineDoc(title=new.title)
    rules = _concerned(old_doc, new_doc, old.number if old else None, new.number, rule)
    return _Change(old.number if old else None, new, rule, rules)


def _concerned(
    old_doc: GuidelineDoc, new_doc: GuidelineDoc, old: str | None, new: str, rule: str | None
) -> tuple[_Rule, ...]:
    d = diff_documents(old_doc, new_doc, old=old, new=new)
    change = {
        **{r.id: "added" for r in d.added},
        **{r.id: "removed" for r in d.removed},
        **{c.id: "changed" for c in d.changed},
    }
    before = {r.id: r for r in old_doc.rules}
    after = {r.id: r for r in new_doc.rules}
    if rule is not None and rule not in before and rule not in after:
        raise NotFound(f"rule {rule} is in neither version {old or '(none)'} nor {new}")
    keys = [rule] if rule is not None else [*after, *(k for k in before if k not in after)]
    return tuple(
        _rule(key, change.get(key, "unchanged"), before.get(key), after.get(key))
        for key in keys
        if rule is not None or key in change
    )


def _rule(key: str, change: str, old: RuleDoc | None, new: RuleDoc | None) -> _Rule:
    both = [r for r in (old, new) if r is not None]
    return _Rule(
        id=key,
        title=both[-1].title,
        change=change,
        labels=frozenset(label for r in both for label in r.labels),
        neighbours=frozenset().union(*(value_labels(e.label) for r in both for e in r.exemplars)),
        exemplars={e.item: value_labels(e.label) for e in (new.exemplars if new else ())},
    )


# -- the selection --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Selection:
    change: _Change
    cols: Columns
    reason: IntArray  # per row of ``cols``; :data:`_UNLISTED` when not listed
    listed: IntArray  # rows of ``cols`` listed, likeliest affected first
    key_labels: list[frozenset[str]]  # per label code of ``cols``
    exemplar_items: dict[int, frozenset[str]]  # exemplar item id -> its rules' ids


def _read(
    session: Session, actor: Actor, project: Project, change: _Change, exemplars: Iterable[int]
) -> Columns:
    """The project's annotations that may be listed: not made under ``to`` or a later
    published version and, in single-label projects, with a label of the set or on an
    exemplar item (a prefilter in SQL; the tests on the columns decide)."""
    newer = [
        v.number
        for v in service.history(session, actor=actor, project=project)
        if version_order(v.number) >= version_order(change.new.number)
    ]
    a = Annotation.__table__.c
    where = [or_(a.guideline_version.is_(None), a.guideline_version.not_in(newer))]
    if project.task_type == "single":
        wanted = sorted(change.labels | change.neighbours)
        where.append(or_(_json_text(session, a.value).in_(wanted), a.item_id.in_(list(exemplars))))
    return read_columns(session, project, ids=True, where=and_(*where))


def _json_text(session: Session, column: Any) -> Any:
    """SQL for a JSON string value as its text (another JSON value matches no label)."""
    if session.get_bind().dialect.name == "postgresql":
        return column.op("#>>")(literal_column("'{}'"))
    return func.json_extract(column, "$")


def _exemplar_items(
    session: Session, project: Project, change: _Change
) -> tuple[dict[int, frozenset[str]], dict[int, frozenset[str]]]:
    """Per exemplar item id of ``to``'s concerned rules: its label names there (the
    first rule showing it decides), and the ids of the rules showing it."""
    names = {ext for r in change.rules for ext in r.exemplars}
    ids = dict(
        session.execute(
            select(Item.external_id, Item.id).where(
                Item.project_id == project.id, Item.external_id.in_(names)
            )
        )
        .tuples()
        .all()
        if names
        else []
    )
    labels: dict[int, frozenset[str]] = {}
    rules: dict[int, frozenset[str]] = {}
    for r in change.rules:
        for ext, shown in r.exemplars.items():
            if ext in ids:
                labels.setdefault(ids[ext], shown)
                rules[ids[ext]] = rules.get(ids[ext], frozenset()) | {r.id}
    return labels, rules


def _select(session: Session, actor: Actor, project: Project, change: _Change) -> _Selection:
    """The re-check list of ``change``: every row's reason, and the listed rows in order."""
    expected, exemplar_rules = _exemplar_items(session, project, change)
    cols = _read(session, actor, project, change, expected)
    assert cols.ids is not None
    key_labels = [_key_labels(k, project.task_type) for k in cols.categories]
    reason = np.full(len(cols), _UNLISTED, dtype=np.int64)
    if len(cols):
        reason[_concerns(key_labels, change.neighbours)[cols.label]] = 2
        reason[_concerns(key_labels, change.labels)[cols.label]] = 1
        reason[_contradicting(cols, key_labels, expected)] = 0
        newer = version_order(change.new.number)
        older = np.asarray([version_order(v) < newer for v in cols.versions or []], dtype=bool)
        reason[~older[cols.version]] = _UNLISTED
    rows = np.flatnonzero(reason < _UNLISTED)
    when = np.where(np.isnan(cols.submitted), -np.inf, cols.submitted)
    listed = rows[np.lexsort((-cols.ids[rows], -when[rows], reason[rows]))]
    return _Selection(change, cols, reason, listed, key_labels, exemplar_rules)


def _concerns(key_labels: list[frozenset[str]], labels: frozenset[str]) -> BoolArray:
    """Per label code: whether the value concerns one of ``labels``."""
    return np.fromiter((not n.isdisjoint(labels) for n in key_labels), dtype=bool)


def _contradicting(
    cols: Columns, key_labels: list[frozenset[str]], expected: dict[int, frozenset[str]]
) -> BoolArray:
    """Rows on an exemplar item of ``to`` whose labels differ from the exemplar's."""
    out = np.zeros(len(cols), dtype=bool)
    if not expected:
        return out
    for row in np.flatnonzero(np.isin(cols.item, list(expected))).tolist():
        out[row] = key_labels[cols.label[row]] != expected[int(cols.item[row])]
    return out


# -- the list -------------------------------------------------------------------------


def _rule_hits(sel: _Selection, rows: IntArray) -> dict[str, BoolArray]:
    """Per concerned rule: which of ``rows`` concern it (by label, or on one of its
    exemplar items with another label)."""
    cols = sel.cols
    on_exemplar = sel.reason[rows] == 0
    out = {}
    for r in sel.change.rules:
        by_code = _concerns(sel.key_labels, r.labels | r.neighbours)
        items = [i for i, ids in sel.exemplar_items.items() if r.id in ids]
        out[r.id] = by_code[cols.label[rows]] | (on_exemplar & np.isin(cols.item[rows], items))
    return out


def _counts(
    sel: _Selection, hits: dict[str, BoolArray]
) -> tuple[tuple[RuleCount, ...], dict[str, int], dict[str, int]]:
    """Listed annotations per concerned rule, per label of the set and per reason."""
    rows = sel.listed
    per_code = np.bincount(sel.cols.label[rows], minlength=len(sel.cols.categories))
    wanted = sel.change.labels | sel.change.neighbours
    labels = dict.fromkeys(sorted(wanted), 0)
    for code in np.flatnonzero(per_code).tolist():
        for label in sel.key_labels[code] & wanted:
            labels[label] += int(per_code[code])
    per_reason = np.bincount(sel.reason[rows], minlength=len(REASONS))
    reasons = {name: int(per_reason[i]) for i, name in enumerate(REASONS)}
    rules = tuple(
        RuleCount(
            id=r.id,
            title=r.title,
            change=r.change,
            labels=tuple(sorted(r.labels)),
            exemplar_labels=tuple(sorted(r.neighbours - r.labels)),
            annotations=int(hits[r.id].sum()),
        )
        for r in sel.change.rules
    )
    return rules, labels, reasons


def _entries(
    session: Session, sel: _Selection, hits: dict[str, BoolArray], limit: int
) -> tuple[Entry, ...]:
    """The first ``limit`` listed annotations, with their items and annotators."""
    rows = sel.listed[:limit]
    if not len(rows):
        return ()
    assert sel.cols.ids is not None
    ids = sel.cols.ids[rows].tolist()
    found = {
        r.id: r
        for r in session.execute(
            select(
                Annotation.id,
                Item.external_id,
                User.username,
                Annotation.value,
                Annotation.guideline_version,
                Annotation.submitted_at,
            )
            .join(Item, Item.id == Annotation.item_id)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.id.in_(ids))
        )
    }
    return tuple(
        Entry(
            annotation_id=aid,
            item=found[aid].external_id,
            annotator=found[aid].username,
            label=found[aid].value,
            guideline_version=found[aid].guideline_version,
            submitted_at=found[aid].submitted_at,
            reason=REASONS[int(sel.reason[row])],
            rules=tuple(r.id for r in sel.change.rules if hits[r.id][i]),
        )
        for i, (aid, row) in enumerate(zip(ids, rows.tolist(), strict=True))
        if aid in found  # deleted since it was read
    )


def recheck(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    rule: str | None = None,
    from_version: str | None = None,
    to_version: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Recheck:
    """The re-check list of the change ``from_version`` → ``to_version`` (default: the
    one before the current version → the current version), of every changed rule or of
    ``rule`` alone: counts per rule, label and reason, and the first ``limit`` entries
    (likeliest affected first; see the module's docstring)."""
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    require(session, actor, Permission.DATA_EXPORT, project_id=project.id)
    _check_args(rule, from_version, to_version, limit)
    change = _resolve(session, actor, project, rule, from_version, to_version)
    sel = _select(session, actor, project, change)
    hits = _rule_hits(sel, sel.listed)
    rules, labels, reasons = _counts(sel, hits)
    return Recheck(
        old=sel.change.old,
        new=sel.change.new.number,
        rule=rule,
        total=len(sel.listed),
        rules=rules,
        labels=labels,
        reasons=reasons,
        entries=_entries(session, sel, hits, limit),
    )


# -- sending --------------------------------------------------------------------------


def policy_name(rule: str | None, old: str | None, new: str) -> str:
    """The re-check policy of a change: ``Re-check R4 (1.0 → 1.1)``, or
    ``Re-check 1.0 → 1.1`` for every changed rule."""
    span = f"{old or 'none'} → {new}"
    return f"Re-check {rule} ({span})" if rule else f"Re-check {span}"


def _policy(
    session: Session,
    actor: Actor,
    project: Project,
    change: _Change,
    found: AuditPolicy | None,
    sample: int,
) -> AuditPolicy:
    """The change's re-check policy asking for ``sample``: ``found``, or a new one."""
    if found is not None:
        spec = audits.parse_spec({**found.spec, "sample_size": sample})
        return audits.update_policy(session, actor=actor, policy=found, spec=spec)
    spec = audits.parse_spec(
        {
            "cadence": "manual",
            "population": {"labels": sorted(change.labels | change.neighbours)},
            "sample_size": sample,
        }
    )
    name = policy_name(change.rule, change.old, change.new.number)
    return audits.create_policy(session, actor=actor, project=project, name=name, spec=spec)


def _population(session: Session, sel: _Selection) -> Population:
    """The listed annotations as an audit population, in annotation-id order."""
    cols = sel.cols
    assert cols.ids is not None
    rows = np.sort(sel.listed)  # the columns are in id order
    label = np.asarray(cols.categories, dtype=object)[cols.label[rows]]
    versions = np.empty(len(cols.versions or []), dtype=object)
    versions[:] = cols.versions or []
    assert cols.version is not None
    return Population(
        cols.ids[rows],
        cols.item[rows],
        cols.annotator[rows],
        label,
        np.full(len(rows), "", dtype=object),  # not read: no filter or stratum uses it
        cols.submitted[rows],
        {},
        session,
        versions[cols.version[rows]],
    )


def _window(pop: Population) -> tuple[datetime, datetime]:
    """The span of the population's submit times (the epoch when none has one)."""
    times = pop.submitted[~np.isnan(pop.submitted)]
    if not len(times):
        start = datetime(1970, 1, 1, tzinfo=UTC)
        return start, start + timedelta(seconds=1)
    first = datetime.fromtimestamp(math.floor(times.min()), tz=UTC)
    last = datetime.fromtimestamp(math.floor(times.max()), tz=UTC)
    return first, last + timedelta(seconds=1)


def _sent_before(
    session: Session, project: Project, name: str
) -> tuple[AuditPolicy | None, AuditRun | None]:
    """The re-check policy of this name, and its first run (None when not found)."""
    policy = session.scalar(
        select(AuditPolicy).where(AuditPolicy.project_id == project.id, AuditPolicy.name == name)
    )
    if policy is None:
        return None, None
    run = session.scalar(
        select(AuditRun).where(AuditRun.policy_id == policy.id).order_by(AuditRun.id).limit(1)
    )
    return policy, run


def send(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    rule: str | None = None,
    from_version: str | None = None,
    to_version: str | None = None,
    sample: int = DEFAULT_SAMPLE,
) -> Sent:
    """Send the re-check list to review: an audit run of the change's re-check policy
    over the whole list, reviewing a seeded random sample of ``sample`` of it (all of
    it when shorter). Sending the same re-check again returns the run opened first."""
    require(session, actor, Permission.AUDIT_MANAGE, project_id=project.id)
    _check_args(rule, from_version, to_version, 0)
    if not 1 <= sample <= MAX_SAMPLE:
        raise ValidationFailed(
            f"sample size {sample} is out of range",
            [Violation("sample", "range", f"between 1 and {MAX_SAMPLE}")],
        )
    change = _resolve(session, actor, project, rule, from_version, to_version)
    name = policy_name(rule, change.old, change.new.number)
    found, earlier = _sent_before(session, project, name)
    if found is not None and earlier is not None:
        return Sent(earlier, found, False, [f"already sent as run {earlier.id}"])
    sel = _select(session, actor, project, change)
    span = f"{change.old or 'none'} → {change.new.number}"
    if not len(sel.listed):
        raise ValidationFailed(
            f"nothing to re-check: no annotation made before {change.new.number} "
            f"concerns {'rule ' + rule if rule else 'a rule changed in ' + span}",
            [Violation("rule" if rule else "to", "empty", "the re-check list is empty")],
        )
    pop = _population(session, sel)
    start, end = _window(pop)
    labels = sorted(change.labels | change.neighbours)
    note = f"re-check of guideline {span}: {len(pop)} annotations concerning {', '.join(labels)}"
    context = {"from": change.old, "to": change.new.number, "rule": rule, "labels": labels}
    with session.begin_nested():  # a refused opening (no reviewer) leaves no policy behind
        policy = _policy(session, actor, project, change, found, sample)
        res = open_selected_run(
            session,
            actor=actor,
            policy=policy,
            pop=pop,
            window_start=start,
            window_end=end,
            notes=[note],
            context={"recheck": context},
        )
    return Sent(res.run, policy, res.created, res.notes)
