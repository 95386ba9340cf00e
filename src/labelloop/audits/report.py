"""The report of a closed audit run: every figure with its confidence interval and n.

The report is a plain JSON document (``REPORT_SCHEMA``), stored on the run when it
closes, so later data changes never rewrite a past audit. Its sections:

``error_rate``
    Design-weighted (Hájek) population error rate, overall and per stratum, label,
    segment and annotator (domain estimates), from :mod:`labelloop.stats.sampling`.
``agreement``
    Krippendorff's alpha (bootstrap CI) and pairwise Cohen's kappa among the annotators
    in the window; agreement between double reviewers.
``gold`` / ``consensus``
    Accuracy against gold items; Dawid–Skene consensus agreement with reviewers.
``error_categories`` / ``confusions``
    Reviewers' error categories and (given → corrected) label pairs, ranked.
``patterns``
    Groups whose error rate is higher than the rest (one-sided Fisher exact test on the
    2×2 table), Benjamini–Hochberg controlled at q = 0.05 across every group tested, with
    a small-count rule (at least ``MIN_REVIEWED`` reviewed and ``MIN_ERRORS`` errors).
``edge_cases``, ``turnaround``, ``recommendations``, ``comparison``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.models import User
from labelloop.audits.models import AuditAssignment, AuditReview, AuditRun, AuditUnit
from labelloop.audits.population import (
    item_born,
    items_created_before,
    label_key,
    lateness,
    load_population,
    parse_time,
    tagged_items,
)
from labelloop.audits.schemas import SEVERITY_WEIGHT, PolicySpec
from labelloop.guidelines.schemas import version_order
from labelloop.projects.models import Annotation, GoldLabel, Item, Project
from labelloop.stats import sampling
from labelloop.stats._data import Ratings
from labelloop.stats.distributions import benjamini_hochberg

REPORT_SCHEMA = "labelloop.audit-report/1"
MIN_REVIEWED = 8
MIN_ERRORS = 3
FDR_Q = 0.05
N_BOOT = 500

FEASIBILITY = {
    "clarify guideline": 0.9,
    "targeted training": 0.8,
    "tooling fix": 0.6,
    "workload change": 0.7,
    "more data": 0.4,
}
CATEGORY_ACTION = {
    "boundary case": "clarify guideline",
    "ambiguous context": "clarify guideline",
    "guideline misread": "targeted training",
    "bias indicator": "targeted training",
    "attention slip": "workload change",
    "tool or data issue": "tooling fix",
}


def _r(x: float | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(x):  # JSON has no NaN or Infinity
        return None
    return round(float(x), digits)


def _estimate_json(est: sampling.Estimate) -> dict[str, Any]:
    return {
        "value": _r(est.value),
        "ci": [_r(est.ci[0]), _r(est.ci[1])],
        "n": est.n,
        "n_eff": _r(est.n_eff, 1),
    }


def _wilson(k: int, n: int, confidence: float) -> dict[str, Any]:
    if n == 0:
        return {"value": None, "ci": None, "n": 0}
    lo, hi = sampling.wilson_interval(k / n, n, confidence=confidence)
    return {"value": _r(k / n), "ci": [_r(lo), _r(hi)], "n": n}


def _agreement_json(res: Any) -> dict[str, Any]:
    return {
        "value": _r(res.value),
        "ci": [_r(res.ci[0]), _r(res.ci[1])] if res.ci else None,
        "n_items": res.n_items,
        "n_annotators": res.n_annotators,
        "n_pairable": res.n_pairable,
    }


def _quantiles(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "p90": None, "n": 0}
    arr = np.asarray(values, dtype=np.float64)
    return {
        "median": _r(float(np.median(arr)), 2),
        "p90": _r(float(np.quantile(arr, 0.9)), 2),
        "n": len(values),
    }


@dataclass
class _Unit:
    id: int
    annotation_id: int
    item_id: int
    annotator: str
    stratum: str
    pi: float
    given: str
    submitted_at: datetime | None
    segments: dict[str, Any]
    tags: list[str]
    verdict: str | None = None
    truth: str | None = None
    category: str | None = None
    severity: str | None = None
    rule_ref: str | None = None
    reviewed_at: datetime | None = None
    late: bool | None = None
    hour: int | None = None
    guideline_version: str | None = None


def _time_of_day(hour: int) -> str:
    if hour < 6:
        return "night (00-06 UTC)"
    if hour < 12:
        return "morning (06-12 UTC)"
    if hour < 18:
        return "afternoon (12-18 UTC)"
    return "evening (18-24 UTC)"


def _fisher_greater(e_g: int, n_g: int, e_r: int, n_r: int) -> float:
    table = [[e_g, n_g - e_g], [e_r, n_r - e_r]]
    return float(sps.fisher_exact(table, alternative="greater").pvalue)


def _patterns(units: Sequence[_Unit], confidence: float) -> list[dict[str, Any]]:
    """Groups with more errors than the rest, after Benjamini–Hochberg across all tests."""
    judged = [u for u in units if u.verdict in ("correct", "incorrect")]
    if not judged:
        return []
    err = np.asarray([u.verdict == "incorrect" for u in judged])
    groups: dict[tuple[str, str], npt.NDArray[np.bool_]] = {}

    def add(dimension: str, keys: Sequence[str | None]) -> None:
        for key in sorted({k for k in keys if k is not None}):
            groups[(dimension, key)] = np.asarray([k == key for k in keys])

    add("annotator", [u.annotator for u in judged])
    add("label", [u.given for u in judged])
    seg_keys = sorted({k for u in judged for k in u.segments})
    for key in seg_keys:
        add(
            f"segment:{key}",
            [str(u.segments.get(key)) if key in u.segments else None for u in judged],
        )
    add("time of day", [_time_of_day(u.hour) if u.hour is not None else None for u in judged])
    add("tag", ["edge-case" if "edge-case" in u.tags else "not edge-case" for u in judged])
    # fatigue: late vs early in long sessions, overall and per annotator (compared with
    # the same annotator's early work, so a generally weak annotator is not "fatigued")
    tests: list[dict[str, Any]] = []
    for (dimension, key), mask in groups.items():
        n_g, e_g = int(mask.sum()), int(err[mask].sum())
        n_r, e_r = int((~mask).sum()), int(err[~mask].sum())
        if n_r == 0:
            continue
        tests.append(
            {
                "dimension": dimension,
                "group": key,
                "errors": e_g,
                "reviewed": n_g,
                "rest_errors": e_r,
                "rest_reviewed": n_r,
            }
        )
    for annotator in sorted({u.annotator for u in judged}):
        mine = [u for u in judged if u.annotator == annotator and u.late is not None]
        late = [u for u in mine if u.late]
        early = [u for u in mine if not u.late]
        if late and early:
            tests.append(
                {
                    "dimension": "fatigue",
                    "group": f"{annotator}, late in long sessions",
                    "errors": sum(u.verdict == "incorrect" for u in late),
                    "reviewed": len(late),
                    "rest_errors": sum(u.verdict == "incorrect" for u in early),
                    "rest_reviewed": len(early),
                    "annotator": annotator,
                }
            )
    # label pairs concentrated in one annotator: (given -> corrected) errors of the
    # annotator versus the same pair among everyone else's judged units
    pair_of = [(u.given, u.truth) if u.verdict == "incorrect" else None for u in judged]
    for annotator in sorted({u.annotator for u in judged}):
        is_mine = np.asarray([u.annotator == annotator for u in judged])
        pairs = Counter(p for p, m in zip(pair_of, is_mine, strict=True) if m and p is not None)
        for (given, truth), n_pair in sorted(pairs.items()):
            if n_pair < MIN_ERRORS:
                continue
            hit = np.asarray([p == (given, truth) for p in pair_of])
            tests.append(
                {
                    "dimension": "annotator confusion",
                    "group": f"{annotator}: {given} where {truth} is right",
                    "errors": int((hit & is_mine).sum()),
                    "reviewed": int(is_mine.sum()),
                    "rest_errors": int((hit & ~is_mine).sum()),
                    "rest_reviewed": int((~is_mine).sum()),
                    "annotator": annotator,
                    "pair": [given, truth],
                }
            )
    eligible = [t for t in tests if t["reviewed"] >= MIN_REVIEWED and t["errors"] >= MIN_ERRORS]
    pvals = np.asarray(
        [
            _fisher_greater(t["errors"], t["reviewed"], t["rest_errors"], t["rest_reviewed"])
            for t in eligible
        ]
    )
    if len(eligible) == 0:
        return []
    reject, q = benjamini_hochberg(pvals, alpha=FDR_Q)
    found = []
    for t, p, qq, rej in zip(eligible, pvals.tolist(), q.tolist(), reject.tolist(), strict=True):
        if not rej:
            continue
        rate, rest = t["errors"] / t["reviewed"], t["rest_errors"] / t["rest_reviewed"]
        found.append(
            {
                **t,
                "rate": _wilson(t["errors"], t["reviewed"], confidence),
                "rest_rate": _wilson(t["rest_errors"], t["rest_reviewed"], confidence),
                "ratio": _r(rate / rest) if rest > 0 else None,
                "p_value": _r(p, 6),
                "q_value": _r(qq, 6),
                "test": "Fisher exact, one-sided; Benjamini–Hochberg q ≤ 0.05",
            }
        )
    found.sort(key=lambda t: (t["q_value"], -t["errors"]))
    return found


def _domain(
    units: Sequence[_Unit], key: Any, plan_design: str, confidence: float
) -> list[dict[str, Any]]:
    judged = [u for u in units if u.verdict in ("correct", "incorrect")]
    buckets: dict[str, list[_Unit]] = defaultdict(list)
    for u in judged:
        k = key(u)
        if k is not None:
            buckets[str(k)].append(u)
    out = []
    for k in sorted(buckets):
        us = buckets[k]
        est = sampling.estimate_error_rate(
            np.asarray([u.verdict == "incorrect" for u in us], dtype=np.float64),
            np.asarray([u.pi for u in us]),
            design=plan_design,  # type: ignore[arg-type]
            stratum=np.asarray([u.stratum for u in us], dtype=object),
            confidence=confidence,
        )
        out.append(
            {
                "group": k,
                "reviewed": len(us),
                "errors": sum(u.verdict == "incorrect" for u in us),
                "error_rate": _estimate_json(est),
            }
        )
    return out


def _pairable_ratings(pop: Any) -> Ratings | None:
    """The nominal ratings of the items labelled at least twice, or None."""
    item_codes, item_counts = np.unique(pop.item_id, return_counts=True)
    pairable = np.isin(pop.item_id, item_codes[item_counts >= 2])
    if not pairable.any():
        return None
    return Ratings.from_long(
        pop.item_id[pairable], pop.annotator_id[pairable], pop.label[pairable].astype(str)
    )


def _alpha_json(ratings: Ratings, seed: int) -> dict[str, Any]:
    """Krippendorff's nominal alpha with its percentile bootstrap CI (``N_BOOT``)."""
    from labelloop.stats import _alpha

    try:
        res = _alpha.krippendorff_alpha(ratings, level="nominal", n_boot=N_BOOT, seed=seed)
    except ValueError as exc:
        return {"value": None, "reason": str(exc)}
    return _agreement_json(res)


def _by_guideline_version(
    judged: Sequence[_Unit], pop: Any, design: str, confidence: float, seed: int
) -> list[dict[str, Any]]:
    """Error rate and alpha among the annotations made under each guideline version
    (``null``: before the first), so a rule change shows its effect. The error rate is
    the design-weighted domain estimate of the judged units of that version (as
    ``by_label``); alpha is Krippendorff's nominal alpha over the items with at least
    two labels of that version, with a bootstrap CI. Empty when no annotation of the
    window records a version."""
    versions = pop.guideline_version
    if versions is None or not any(v is not None for v in versions):
        return []
    rates = {
        d["group"]: d
        for d in _domain(judged, lambda u: u.guideline_version or "", design, confidence)
    }
    out = []
    for version in sorted({v for v in versions}, key=version_order):
        mask = np.asarray([v == version for v in versions], dtype=bool)
        ratings = _pairable_ratings(pop.take(mask))
        rate = rates.get(version or "")
        out.append(
            {
                "version": version,
                "annotations": int(mask.sum()),
                "reviewed": rate["reviewed"] if rate else 0,
                "errors": rate["errors"] if rate else 0,
                "error_rate": rate["error_rate"] if rate else {"value": None, "ci": None, "n": 0},
                "krippendorff_alpha": _alpha_json(ratings, seed)
                if ratings is not None
                else {"value": None, "reason": "no item labelled twice under this version"},
            }
        )
    return out


def compute_report(
    session: Session, run: AuditRun, *, previous: AuditRun | None = None
) -> dict[str, Any]:
    """Build the report document of ``run`` (the caller stores it on the run)."""
    project = session.get(Project, run.project_id)
    assert project is not None
    spec = PolicySpec.model_validate({k: v for k, v in run.policy_snapshot.items() if k != "name"})
    confidence = spec.confidence
    names = dict(session.execute(select(User.id, User.username)).tuples().all())

    units: dict[int, _Unit] = {}
    for u in session.scalars(
        # by annotation, not unit id: unit ids are shuffled when a run opens, and ties in
        # the report's rankings follow this order
        select(AuditUnit).where(AuditUnit.run_id == run.id).order_by(AuditUnit.annotation_id)
    ):
        snap = u.snapshot
        units[u.id] = _Unit(
            id=u.id,
            annotation_id=u.annotation_id,
            item_id=u.item_id,
            annotator=names.get(u.annotator_id, str(u.annotator_id)),
            stratum=u.stratum,
            pi=u.inclusion_probability,
            given=label_key(snap.get("value")),
            submitted_at=parse_time(snap.get("submitted_at")),
            segments=snap.get("segments") or {},
            tags=snap.get("tags") or [],
            guideline_version=snap.get("guideline_version"),
        )
    reviews = (
        session.execute(
            select(AuditReview, AuditAssignment.double)
            .join(AuditAssignment, AuditAssignment.id == AuditReview.assignment_id)
            .where(AuditReview.run_id == run.id)
            .order_by(AuditReview.id)
        )
        .tuples()
        .all()
    )
    doubles: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for rev, double in reviews:
        unit = units[rev.unit_id]
        truth = (
            label_key(rev.corrected_value)
            if rev.verdict == "incorrect"
            else (unit.given if rev.verdict == "correct" else None)
        )
        if truth is not None:
            doubles[unit.id].append((names.get(rev.reviewer_id, str(rev.reviewer_id)), truth))
        if double:
            continue
        unit.verdict, unit.truth = rev.verdict, truth
        unit.category, unit.severity, unit.rule_ref = rev.error_category, rev.severity, rev.rule_ref
        unit.reviewed_at = rev.created_at

    pop = load_population(session, project, spec, run.window_start, run.window_end)
    long_session, late = lateness(pop)
    for unit in units.values():
        pos = int(np.searchsorted(pop.annotation_id, unit.annotation_id))
        if pos < len(pop) and pop.annotation_id[pos] == unit.annotation_id and long_session[pos]:
            unit.late = bool(late[pos])
        if unit.submitted_at is not None:
            unit.hour = unit.submitted_at.hour

    all_units = list(units.values())
    judged = [u for u in all_units if u.verdict in ("correct", "incorrect")]
    design = str(run.plan.get("design", "stratified"))
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "run": {
            "id": run.id,
            "policy": run.policy_snapshot.get("name"),
            "project": project.name,
            "window_start": run.window_start.isoformat(),
            "window_end": run.window_end.isoformat(),
            "opened_at": run.opened_at.isoformat(),
            "population": run.population_size,
            "sample": run.sample_size,
            "design": design,
            "seed": run.seed,
            "confidence": confidence,
            "blind": spec.blind,
            "strata": spec.strata,
            "notes": run.plan.get("notes", []),
        },
        "reviews": {
            "units": len(all_units),
            "judged": len(judged),
            "unsure": sum(u.verdict == "unsure" for u in all_units),
            "unreviewed": sum(u.verdict is None for u in all_units),
            "double_reviewed": sum(1 for v in doubles.values() if len(v) >= 2),
        },
    }

    # ---- error rates
    if judged:
        y = np.asarray([u.verdict == "incorrect" for u in judged], dtype=np.float64)
        est = sampling.estimate_error_rate(
            y,
            np.asarray([u.pi for u in judged]),
            design=design,  # type: ignore[arg-type]
            stratum=np.asarray([u.stratum for u in judged], dtype=object),
            population_size=float(run.population_size),
            confidence=confidence,
        )
        plan_sizes = {s["stratum"]: s for s in run.plan.get("strata", [])}
        by_stratum = []
        for stratum, sub in sorted(est.by_stratum.items(), key=lambda kv: str(kv[0])):
            info = plan_sizes.get(str(stratum), {})
            by_stratum.append(
                {
                    "stratum": str(stratum),
                    "population": info.get("population"),
                    "sample": info.get("sample"),
                    "error_rate": _estimate_json(sub),
                }
            )
        report["error_rate"] = {
            "overall": _estimate_json(est),
            "estimator": "Hájek (design-weighted); Wilson interval at the effective sample size",
            "by_stratum": by_stratum,
            "by_label": _domain(judged, lambda u: u.given, design, confidence),
            "by_annotator": _domain(judged, lambda u: u.annotator, design, confidence),
            "by_segment": {
                key: _domain(judged, lambda u, k=key: u.segments.get(k), design, confidence)
                for key in sorted({k for u in judged for k in u.segments})
            },
        }
    else:
        report["error_rate"] = {
            "overall": {"value": None, "ci": None, "n": 0},
            "by_stratum": [],
            "by_label": [],
            "by_annotator": [],
            "by_segment": {},
        }

    # ---- agreement among annotators, and between double reviewers
    agreement: dict[str, Any] = {}
    ratings = _pairable_ratings(pop)
    if ratings is not None:
        from labelloop.stats import _kappa

        agreement["krippendorff_alpha"] = _alpha_json(ratings, run.seed)
        try:
            pw = _kappa.pairwise_kappa(ratings)
            pairs: list[dict[str, Any]] = []
            ann = list(pw.annotators)
            for i in range(len(ann)):
                for j in range(i + 1, len(ann)):
                    if pw.n_overlap[i, j] >= 10 and not math.isnan(pw.kappa[i, j]):
                        pairs.append(
                            {
                                "a": names.get(int(ann[i]), str(ann[i])),
                                "b": names.get(int(ann[j]), str(ann[j])),
                                "kappa": _r(float(pw.kappa[i, j])),
                                "n_overlap": int(pw.n_overlap[i, j]),
                            }
                        )
            vals = [float(p["kappa"]) for p in pairs if p["kappa"] is not None]
            agreement["pairwise_kappa"] = {
                "mean": _r(statistics.fmean(vals)) if vals else None,
                "pairs": len(pairs),
                "lowest": sorted(pairs, key=lambda p: float(p["kappa"] or 0.0))[:5],
            }
        except ValueError as exc:
            agreement["pairwise_kappa"] = {"mean": None, "reason": str(exc)}
    double_rows = [(uid, who, lab) for uid, v in doubles.items() if len(v) >= 2 for who, lab in v]
    if double_rows and len({uid for uid, _, _ in double_rows}) >= 2:
        agree = sum(1 for v in doubles.values() if len(v) >= 2 and len({lab for _, lab in v}) == 1)
        n_double = sum(1 for v in doubles.values() if len(v) >= 2)
        agreement["reviewers"] = {"percent_agreement": _wilson(agree, n_double, confidence)}
        try:
            from labelloop.stats import _alpha

            rr = Ratings.from_long(
                [d[0] for d in double_rows],
                [d[1] for d in double_rows],
                [d[2] for d in double_rows],
            )
            agreement["reviewers"]["krippendorff_alpha"] = _agreement_json(
                _alpha.krippendorff_alpha(rr, level="nominal")
            )
        except ValueError as exc:
            agreement["reviewers"]["krippendorff_alpha"] = {"value": None, "reason": str(exc)}
    report["agreement"] = agreement
    report["by_guideline_version"] = _by_guideline_version(
        judged, pop, design, confidence, run.seed
    )

    # ---- gold and consensus
    item_ids = np.unique(pop.item_id).tolist()
    gold: dict[int, str] = {}
    for start in range(0, len(item_ids), 5000):
        chunk = item_ids[start : start + 5000]
        for iid, value in session.execute(
            select(GoldLabel.item_id, GoldLabel.value).where(GoldLabel.item_id.in_(chunk))
        ):
            gold[iid] = label_key(value)
    gold_of = pop.item_values(gold.get)
    on_gold = np.asarray([g is not None for g in gold_of.tolist()], dtype=bool)
    report["gold"] = {
        "accuracy": _wilson(
            int((pop.label[on_gold] == gold_of[on_gold]).sum()), int(on_gold.sum()), confidence
        ),
        "items": len(set(pop.item_id[on_gold].tolist())),
    }
    consensus: dict[str, Any] = {"method": "dawid-skene"}
    if ratings is not None:
        from labelloop.stats.inference import DawidSkene

        ds = DawidSkene(max_iter=100).fit(ratings)
        item_label = {
            int(i): str(lab)
            for i, lab in zip(ratings.items.tolist(), ds.labels_.tolist(), strict=True)
        }
        compared = [u for u in judged if u.truth is not None and u.item_id in item_label]
        consensus["agreement_with_reviewers"] = _wilson(
            sum(item_label[u.item_id] == u.truth for u in compared), len(compared), confidence
        )
        consensus["iterations"] = int(ds.n_iter_)
    report["consensus"] = consensus

    # ---- categories and confusions
    wrong = [u for u in judged if u.verdict == "incorrect"]
    cats = Counter(u.category or "unclassified" for u in wrong)
    sev_by_cat: dict[str, Counter[str]] = defaultdict(Counter)
    for w in wrong:
        sev_by_cat[w.category or "unclassified"][w.severity or "medium"] += 1
    report["error_categories"] = [
        {"category": c, "count": n, "share": _r(n / len(wrong)), "severity": dict(sev_by_cat[c])}
        for c, n in cats.most_common()
    ]
    conf = Counter((u.given, u.truth) for u in wrong if u.truth is not None)
    report["confusions"] = [
        {"given": g, "corrected": t, "count": n} for (g, t), n in conf.most_common(20)
    ]
    rules = Counter(u.rule_ref for u in wrong if u.rule_ref)
    report["rules"] = [{"rule": r, "count": n} for r, n in rules.most_common(20)]

    # ---- patterns
    report["patterns"] = _patterns(all_units, confidence)

    # ---- edge cases: among the project's items that existed by the window's end
    existing = items_created_before(session, project, run.window_end)
    edge_items = tagged_items(session, project, "edge-case") & existing
    labelled_items = set(item_ids)
    edge_labelled = edge_items & labelled_items
    audited_items = {u.item_id for u in all_units}
    report["edge_cases"] = {
        "population_share": _r(len(edge_items) / len(existing)) if existing else None,
        "labelled_in_window": _wilson(len(edge_labelled), len(edge_items), confidence)
        if edge_items
        else None,
        "share_of_labelled": _r(len(edge_labelled) / len(labelled_items))
        if labelled_items
        else None,
        "share_of_audited": _r(len(edge_items & audited_items) / len(audited_items))
        if audited_items
        else None,
    }

    # ---- turnaround (audited items: creation -> first label; label -> verdict)
    to_label: list[float] = []
    audited_list = sorted(audited_items)
    for start in range(0, len(audited_list), 2000):
        chunk = audited_list[start : start + 2000]
        firsts = dict(
            session.execute(
                select(Annotation.item_id, func.min(Annotation.submitted_at))
                .where(Annotation.item_id.in_(chunk))
                .group_by(Annotation.item_id)
            )
            .tuples()
            .all()
        )
        for iid, meta, created_at in session.execute(
            select(Item.id, Item.meta, Item.created_at).where(Item.id.in_(chunk))
        ):
            born = item_born((meta or {}).get("created_at"), created_at)
            first = parse_time(firsts.get(iid))
            if first is not None and first >= born:
                to_label.append((first - born).total_seconds() / 3600)
    to_verdict = [
        (u.reviewed_at - u.submitted_at).total_seconds() / 3600
        for u in judged
        if u.reviewed_at is not None and u.submitted_at is not None
    ]
    report["turnaround"] = {
        "hours_to_first_label": _quantiles(to_label),
        "hours_to_verdict": _quantiles(to_verdict),
    }

    report["recommendations"] = _recommendations(report, run)
    report["comparison"] = _compare(report, previous)
    return report


def _recommendations(report: dict[str, Any], run: AuditRun) -> list[dict[str, Any]]:
    """Actions ranked by impact (estimated affected annotations × mean severity weight)
    times feasibility; each points at the report entry that supports it."""
    out: list[dict[str, Any]] = []
    population = run.population_size
    sample = max(run.sample_size, 1)
    for idx, p in enumerate(report.get("patterns", [])):
        dim, group = p["dimension"], p["group"]
        if dim == "annotator":
            kind, action = (
                "targeted training",
                f"Assign targeted training to {group} on the labels they miss most",
            )
        elif dim == "fatigue":
            kind, action = (
                "workload change",
                f"Shorten sessions or add breaks for {p.get('annotator', group)}: errors rise late in long sessions",
            )
        elif dim == "annotator confusion":
            given, truth = p["pair"]
            kind, action = (
                "targeted training",
                f"Train {p['annotator']} on telling {truth!r} from {given!r} (refresher with exemplars)",
            )
        elif dim == "label":
            kind, action = (
                "clarify guideline",
                f"Clarify the guideline for label {group!r} and add exemplars of its boundary",
            )
        elif dim.startswith("segment:"):
            kind, action = (
                "more data",
                f"Add guidance, exemplars or training data for segment {dim.split(':', 1)[1]}={group}",
            )
        elif dim == "tag":
            kind, action = (
                "clarify guideline",
                f"Write rulings for {group} items: they carry most errors",
            )
        else:
            kind, action = (
                "workload change",
                f"Review scheduling: errors concentrate in the {group}",
            )
        affected = p["errors"] / sample * population
        out.append(
            {
                "kind": kind,
                "action": action,
                "evidence": f"patterns[{idx}]",
                "affected_estimate": round(affected, 1),
                "severity_weight": 2.0,
            }
        )
    for idx, c in enumerate(report.get("error_categories", [])):
        action_kind = CATEGORY_ACTION.get(c["category"])
        if action_kind is None or c["count"] < MIN_ERRORS:
            continue
        sev = c.get("severity", {})
        total = sum(sev.values()) or 1
        weight = sum(SEVERITY_WEIGHT.get(s, 2.0) * n for s, n in sev.items()) / total
        out.append(
            {
                "kind": action_kind,
                "action": f"Address '{c['category']}' errors ({c['count']} found): {action_kind}",
                "evidence": f"error_categories[{idx}]",
                "affected_estimate": round(c["count"] / sample * population, 1),
                "severity_weight": round(weight, 2),
            }
        )
    for rec in out:
        rec["feasibility"] = FEASIBILITY[rec["kind"]]
        rec["impact"] = round(rec["affected_estimate"] * rec["severity_weight"], 1)
        rec["priority_score"] = round(rec["impact"] * rec["feasibility"], 1)
    out.sort(key=lambda r: -r["priority_score"])
    for rank, rec in enumerate(out, start=1):
        rec["priority"] = rank
    return out


def _se_from(entry: dict[str, Any] | None, confidence: float) -> tuple[float, float] | None:
    if not entry or entry.get("value") is None or not entry.get("ci"):
        return None
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    lo, hi = entry["ci"]
    if lo is None or hi is None:
        return None
    return float(entry["value"]), max((hi - lo) / (2 * z), 1e-9)


def delta_test(
    now: dict[str, Any] | None, before: dict[str, Any] | None, confidence: float = 0.95
) -> dict[str, Any] | None:
    """Difference of two independent estimates, z-test with standard errors from their
    intervals (``se ≈ width / 2z``); two-sided p-value."""
    a, b = _se_from(now, confidence), _se_from(before, confidence)
    if a is None or b is None:
        return None
    delta = a[0] - b[0]
    z = delta / math.sqrt(a[1] ** 2 + b[1] ** 2)
    p = float(2 * sps.norm.sf(abs(z)))
    return {
        "delta": _r(delta),
        "z": _r(z, 3),
        "p_value": _r(p, 6),
        "significant": p < 1 - confidence,
    }


def _compare(report: dict[str, Any], previous: AuditRun | None) -> dict[str, Any] | None:
    if previous is None or not previous.report:
        return None
    conf = report["run"]["confidence"]
    prev = previous.report
    return {
        "previous_run": previous.id,
        "previous_window_end": previous.window_end.isoformat(),
        "error_rate": delta_test(
            report["error_rate"].get("overall"), prev.get("error_rate", {}).get("overall"), conf
        ),
        "krippendorff_alpha": delta_test(
            report.get("agreement", {}).get("krippendorff_alpha"),
            prev.get("agreement", {}).get("krippendorff_alpha"),
            conf,
        ),
        "gold_accuracy": delta_test(
            report.get("gold", {}).get("accuracy"), prev.get("gold", {}).get("accuracy"), conf
        ),
    }
