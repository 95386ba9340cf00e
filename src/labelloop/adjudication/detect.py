"""Finding disagreement cases, and how urgent each one is.

Signals (an item may have several; the case's ``reason`` is the first in
:data:`REASONS` order, every one is kept in ``signals``):

- ``posterior``: two or more votes and the Dawid–Skene posterior of the consensus
  label below the project's ``posterior_below``;
- ``spread``: at least ``spread_min_votes`` votes and the plurality label holding at
  most ``spread_max_share`` of them;
- ``model``: the newest model prediction, made with a confidence of at least
  ``model_confidence`` (its score, else its probability of the label it gives; taken as
  confident when it states neither), differs from a consensus whose posterior is at
  least ``model_consensus``: a confident model against a confident team;
- ``flag``: an annotator flagged their annotation as uncertain;
- ``audit_unsure``: an audit reviewer's verdict was *unsure*;
- ``audit_disputed``: two reviews of one audited annotation disagree (verdict or
  corrected label);
- ``manual``: opened by hand.

Priority = uncertainty × impact:

- uncertainty ``u_i = max(1 − p_i, 1 − s_i)`` (``p_i``: the consensus posterior, see
  :mod:`labelloop.adjudication.votes`; ``s_i`` the plurality's share of the votes, so a
  spread the model explains away still counts; ``u_i = 0.5`` for an item without
  votes); a
  person's signal (flag, unsure, disputed, manual) raises it to at least 0.5, a coin
  flip, since someone found the item unclear, and a confident model's disagreement to
  at least 0.25, half that (a posterior from few votes is overconfident, so the
  model's dissent is kept as a doubt of its own);
- impact ``m_i = 1 + s_i + g_i + d_i``: ``s_i`` the scarcity of the item's rarest
  segment value, ``max_k (1 − n(k, v_ik) / max_v n(k, v))`` over its segment keys ``k``
  (0 for the commonest value, towards 1 for rare strata); ``g_i = 1`` when the item is
  gold or a published exemplar (a wrong label there misleads every later check),
  else 0; ``d_i`` the share of its votes that differ from the consensus.

So priority lies in [0, 4): 0 for a unanimous item nobody flagged, highest for a
contested gold item in a rare segment.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from labelloop.adjudication.models import AdjudicationSettings
from labelloop.adjudication.votes import Votes
from labelloop.audits.models import AuditReview, AuditRun, AuditUnit
from labelloop.audits.population import label_from_json_text
from labelloop.projects.models import GoldLabel, Item, Prediction, Project
from labelloop.store.bulk import id_in

REASONS = ("manual", "audit_disputed", "audit_unsure", "flag", "model", "posterior", "spread")
HUMAN = frozenset({"manual", "audit_disputed", "audit_unsure", "flag"})
HUMAN_UNCERTAINTY = 0.5
MODEL_UNCERTAINTY = 0.25
_CHUNK = 20_000  # ids per IN (...) list (one array parameter on PostgreSQL)


@dataclass
class Signals:
    """Signals found per item id: ``{item: [{"reason": ..., "detail": ...}]}``."""

    by_item: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, item_id: int, reason: str, detail: str) -> None:
        self.by_item[int(item_id)].append({"reason": reason, "detail": detail})

    def primary(self, item_id: int) -> str:
        found = {s["reason"] for s in self.by_item[item_id]}
        return next(r for r in REASONS if r in found)


def vote_signals(votes: Votes, cfg: AdjudicationSettings, out: Signals) -> None:
    """The ``posterior`` and ``spread`` signals."""
    cats = votes.categories
    low = np.flatnonzero((votes.n >= 2) & (votes.posterior < cfg.posterior_below))
    for i in low.tolist():
        out.add(
            votes.items[i],
            "posterior",
            f"posterior {votes.posterior[i]:.2f} for {cats[votes.consensus[i]]!r} "
            f"over {votes.n[i]} votes (below {cfg.posterior_below:g})",
        )
    spread = np.flatnonzero(
        (votes.n >= cfg.spread_min_votes) & (votes.top_share <= cfg.spread_max_share)
    )
    for i in spread.tolist():
        out.add(
            votes.items[i],
            "spread",
            f"the most chosen label has {votes.top_share[i]:.0%} of {votes.n[i]} votes",
        )


def model_signals(
    session: Session, project: Project, votes: Votes, cfg: AdjudicationSettings, out: Signals
) -> None:
    """``model``: the newest prediction per item against a confident consensus."""
    confident = (votes.n >= 2) & (votes.posterior >= cfg.model_consensus)
    if not confident.any():
        return
    rows = session.execute(
        select(
            Prediction.item_id,
            Prediction.model_name,
            cast(Prediction.value, Text),
            Prediction.score,
            cast(Prediction.probabilities, Text),
        )
        .where(Prediction.project_id == project.id)
        .order_by(Prediction.item_id, Prediction.created_at, Prediction.id)
    ).tuples()
    newest = {item: (model, text, score, probs) for item, model, text, score, probs in rows}
    if not newest:
        return
    ids = np.fromiter(newest, dtype=np.int64, count=len(newest))
    at = np.searchsorted(votes.items, ids)
    at[at >= votes.items.size] = 0
    known = (votes.items[at] == ids) & confident[at]
    for item_id, i in zip(ids[known].tolist(), at[known].tolist(), strict=True):
        model, text, score, probs = newest[item_id]
        said, agreed = label_from_json_text(text), votes.categories[votes.consensus[i]]
        if said != agreed and _confidence(said, score, probs) >= cfg.model_confidence:
            out.add(
                item_id,
                "model",
                f"model {model} says {said!r}; the consensus {agreed!r} has posterior "
                f"{votes.posterior[i]:.2f}",
            )


def _confidence(label: str, score: float | None, probabilities: str | None) -> float:
    if score is not None:
        return float(score)
    if probabilities:
        found = json.loads(probabilities)
        if isinstance(found, dict) and isinstance(found.get(label), int | float):
            return float(found[label])
    return 1.0


def flag_signals(flagged_items: npt.NDArray[np.int64], out: Signals) -> None:
    """``flag``: annotations their annotator flagged as uncertain (their item ids)."""
    items, counts = np.unique(flagged_items, return_counts=True)
    for item_id, n in zip(items.tolist(), counts.tolist(), strict=True):
        out.add(item_id, "flag", f"{n} annotator{'s' if n != 1 else ''} flagged it as uncertain")


def audit_signals(session: Session, project: Project, out: Signals) -> None:
    """``audit_unsure`` and ``audit_disputed`` from the project's audit reviews."""
    rows = session.execute(
        select(AuditUnit.id, AuditUnit.item_id, AuditReview.verdict, AuditReview.corrected_value)
        .join(AuditReview, AuditReview.unit_id == AuditUnit.id)
        .join(AuditRun, AuditRun.id == AuditUnit.run_id)
        .where(AuditRun.project_id == project.id)
    ).tuples()
    per_unit: dict[int, tuple[int, list[tuple[str, Any]]]] = {}
    for unit, item, verdict, corrected in rows:
        per_unit.setdefault(unit, (item, []))[1].append((verdict, corrected))
    for item, reviews in per_unit.values():
        if any(v == "unsure" for v, _ in reviews):
            out.add(item, "audit_unsure", "an auditor could not decide")
        opinions = {(v, repr(c) if v == "incorrect" else None) for v, c in reviews}
        if len(reviews) >= 2 and len(opinions) >= 2:
            out.add(item, "audit_disputed", f"{len(reviews)} audit reviews disagree")


# -- scoring --------------------------------------------------------------------------


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def scarcity(session: Session, project: Project, item_ids: Sequence[int]) -> dict[int, float]:
    """``s_i`` of the module doc for each item."""
    segments: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(item_ids):
        segments |= dict(
            session.execute(select(Item.id, Item.segments).where(id_in(session, Item.id, chunk)))
            .tuples()
            .all()
        )
    keys = sorted({k for seg in segments.values() for k in (seg or {})})
    counts: dict[str, dict[str, int]] = {}
    for key in keys:
        value = Item.segments[key].as_string()
        rows = session.execute(
            select(value, func.count()).where(Item.project_id == project.id).group_by(value)
        ).tuples()
        counts[key] = {str(v): int(n) for v, n in rows if v is not None}
    out: dict[int, float] = {}
    for item_id in item_ids:
        best = 0.0
        for key, v in (segments.get(item_id) or {}).items():
            per = counts.get(key) or {}
            if per and str(v) in per:
                best = max(best, 1.0 - per[str(v)] / max(per.values()))
        out[item_id] = best
    return out


def special_items(session: Session, project: Project, item_ids: Sequence[int]) -> set[int]:
    """The items among ``item_ids`` that are gold or published exemplars."""
    from labelloop.guidelines.models import GuidelineExemplar
    from labelloop.guidelines.service import shown_exemplar_items

    found: set[int] = set()
    for chunk in _chunks(item_ids):
        found |= set(
            session.scalars(
                select(GoldLabel.item_id).where(
                    GoldLabel.project_id == project.id, id_in(session, GoldLabel.item_id, chunk)
                )
            )
        )
        found |= set(
            session.scalars(
                shown_exemplar_items(project.id).where(
                    id_in(session, GuidelineExemplar.item_id, chunk)
                )
            )
        )
    return found


@dataclass(frozen=True)
class Score:
    uncertainty: float
    impact: float
    posterior: float | None
    consensus: str | None

    @property
    def priority(self) -> float:
        return round(self.uncertainty * self.impact, 4)


def score(
    session: Session, project: Project, votes: Votes, signals: Signals, item_ids: Sequence[int]
) -> dict[int, Score]:
    """Uncertainty, impact and priority (module doc) of each item."""
    scarce = scarcity(session, project, item_ids)
    special = special_items(session, project, item_ids)
    ids = np.asarray(item_ids, dtype=np.int64)
    at = np.searchsorted(votes.items, ids)
    at[at >= votes.items.size] = 0
    has = votes.items[at] == ids if votes.items.size else np.zeros(ids.size, dtype=bool)
    out: dict[int, Score] = {}
    for item_id, i, voted in zip(ids.tolist(), at.tolist(), has.tolist(), strict=True):
        reasons = {s["reason"] for s in signals.by_item.get(item_id, [])}
        p = float(votes.posterior[i]) if voted else None
        u = HUMAN_UNCERTAINTY if p is None else 1.0 - p
        if voted:  # the raw split counts too: a confident model of a 1-1-1 split is no comfort
            u = max(u, 1.0 - float(votes.top_share[i]))
        if reasons & HUMAN:
            u = max(u, HUMAN_UNCERTAINTY)
        elif "model" in reasons:
            u = max(u, MODEL_UNCERTAINTY)
        d = float(votes.differ[i]) if voted else 0.0
        impact = 1.0 + scarce.get(item_id, 0.0) + (1.0 if item_id in special else 0.0) + d
        consensus = votes.categories[votes.consensus[i]] if voted else None
        out[item_id] = Score(
            round(u, 4), round(impact, 4), None if p is None else round(p, 4), consensus
        )
    return out
