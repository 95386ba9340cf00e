"""`labelloop stats`: agreement, truth inference and label issues on long-form files.

No database: FILE is a long-form CSV/TSV/JSONL/Parquet file with one row per rating
(item, annotator, label), read by :func:`labelloop.formats.columns.read_columns`, which
sniffs the delimiter and finds the columns by common names unless ``--item``,
``--annotator`` and ``--label`` name them. Every number comes from
:mod:`labelloop.stats`; this module only reads, calls and prints.

Labels keep their values as written. They are parsed as numbers (integers when every
label is one) when the statistic needs numbers: ``--level ordinal|interval|ratio`` or
``--weights linear|quadratic``; at the interval and ratio levels a label that is not a
number is an error naming its line.

Errors in the files (missing column, empty file, not UTF-8, a bad value) and in the data
(a single annotator, no item rated twice, ...) exit with code 1 and one message on stderr
naming the file, line and field where there is one; usage errors exit with 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from labelloop.cli._common import JsonFlag, console, err_console, fail
from labelloop.formats._common import FormatError

if TYPE_CHECKING:
    from labelloop.stats import AgreementResult, Ratings

app = typer.Typer(
    help="""Statistics on long-form rating files, without a database: agreement, truth
inference, label issues.

FILE has one row per rating (item, annotator, label): CSV or TSV (the delimiter is sniffed),
JSON Lines or Parquet. Columns are found by their names (item: item, item_id, unit, object,
task_id, orig_id, id; annotator: annotator, annotator_id, worker, worker_id, rater, coder,
user; label: label, response, rating, value, answer, category) unless --item, --annotator
and --label name them; --no-header reads a CSV/TSV without a header row, whose columns are
then numbered 1, 2, 3. A bad file or bad data exits with code 1 and one message on stderr
naming the file, line and field. Guide: docs/stats/index.md.""",
    no_args_is_help=True,
)


class Level(StrEnum):
    nominal = "nominal"
    ordinal = "ordinal"
    interval = "interval"
    ratio = "ratio"


class Weights(StrEnum):
    identity = "identity"
    linear = "linear"
    quadratic = "quadratic"


class AlphaBootstrap(StrEnum):
    items = "items"
    krippendorff = "krippendorff"


class Method(StrEnum):
    majority = "majority"
    wawa = "wawa"
    dawid_skene = "dawid-skene"
    one_coin = "one-coin"
    glad = "glad"
    mace = "mace"


class Filter(StrEnum):
    prune_by_noise_rate = "prune_by_noise_rate"
    prune_by_class = "prune_by_class"
    both = "both"
    confident_learning = "confident_learning"
    predicted_neq_given = "predicted_neq_given"


class RankBy(StrEnum):
    self_confidence = "self_confidence"
    normalized_margin = "normalized_margin"


# ------------------------------------------------------------------ shared options
FileArg = Annotated[
    Path,
    typer.Argument(
        metavar="FILE",
        help="Long-form ratings: CSV, TSV, JSONL or Parquet, one row per (item, annotator, label).",
        show_default=False,
    ),
]
ItemCol = Annotated[
    str | None,
    typer.Option(
        "--item",
        help="Item column (default: item, item_id, unit, task_id, orig_id, id ...).",
        show_default=False,
    ),
]
AnnotatorCol = Annotated[
    str | None,
    typer.Option(
        "--annotator",
        help="Annotator column (default: annotator, worker, rater, coder, user ...).",
        show_default=False,
    ),
]
LabelCol = Annotated[
    str | None,
    typer.Option(
        "--label",
        help="Label column (default: label, response, rating, value, answer, category).",
        show_default=False,
    ),
]
NoHeader = Annotated[
    bool,
    typer.Option(
        "--no-header",
        help="CSV/TSV without a header row: columns are numbered 1, 2, 3 ... and "
        "--item/--annotator/--label take those numbers.",
    ),
]
Limit = Annotated[
    int,
    typer.Option(
        "--limit", min=0, help="Rows per table in the Rich output (0: all). JSON is never cut."
    ),
]


# ---------------------------------------------------------------------- helpers
@contextmanager
def _errors(path: Path) -> Iterator[None]:
    """Bad files and bad data: exit 1 with the message (file, line, field) on stderr."""
    try:
        yield
    except FormatError as exc:  # names the file (and line and field) itself
        raise fail(str(exc)) from None
    except ValueError as exc:  # the statistics' contract for bad input
        raise fail(f"{path}: {exc}") from None
    except ImportError as exc:  # e.g. Parquet without a working pyarrow
        raise fail(f"{path}: cannot read this file type here: {exc}") from None


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to null, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _emit(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(_clean(payload), ensure_ascii=False, indent=2))


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def _fmt_ci(ci: Sequence[float] | None) -> str:
    if ci is None:
        return "—"
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _number(text: str) -> int | float | None:
    """The number a label spells (int when it is one), or None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _as_numbers(
    values: list[str], lines: list[int], path: Path, field: str, *, required: bool, what: str
) -> list[int | float] | None:
    """Every value parsed as a number (all ints, or all floats); None when one is not a number.

    With ``required`` a value that is not a finite number is an error naming its line.
    """
    out: list[int | float] = []
    for value, line in zip(values, lines, strict=True):
        num = _number(value)
        if num is None:
            if required:
                raise FormatError(
                    f"{path}, line {line}, field {field}: {value!r} is not a number ({what})"
                )
            return None
        out.append(num)
    if any(isinstance(v, float) for v in out):
        out = [float(v) for v in out]
    return out


def _read_long(
    path: Path,
    *,
    item: str | None,
    annotator: str | None,
    label: str | None,
    no_header: bool,
    extra: dict[str, str | None] | None = None,
) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Read the columns; returns them (plus ``_line``) and the resolved column names."""
    from labelloop.formats.columns import column_names, read_columns, resolve_columns

    wanted: dict[str, str | None] = {"item": item, "annotator": annotator, "label": label}
    wanted.update(extra or {})
    data = read_columns(path, wanted, header=not no_header, with_lines=True)
    names = resolve_columns(column_names(path, header=not no_header), wanted, path)
    if not data["label"]:
        raise FormatError(f"{path}: no ratings (the file has a header but no rows)")
    return data, names


def _ratings(
    data: dict[str, list[Any]],
    names: dict[str, str],
    path: Path,
    *,
    level: str,
    weights: str,
    categories: str | None,
) -> Ratings:
    """The :class:`Ratings` of the columns, with labels parsed as the level needs."""
    import numpy as np

    from labelloop.stats import Ratings

    raw: list[str] = data["label"]
    lines: list[int] = data["_line"]
    numeric_level = level in ("interval", "ratio")
    labels: list[Any] = raw
    wants_numbers = level != "nominal" or weights != "identity"
    if wants_numbers:
        parsed = _as_numbers(
            raw, lines, path, names["label"], required=numeric_level, what=f"--level {level}"
        )
        if parsed is not None:
            labels = parsed
    cats: list[Any] | None = None
    if categories is not None:
        texts = [c.strip() for c in categories.split(",") if c.strip()]
        if labels is raw:
            cats = texts
        else:
            parsed_cats = [_number(c) for c in texts]
            bad = [t for t, c in zip(texts, parsed_cats, strict=True) if c is None]
            if bad:
                raise FormatError(
                    f"--categories: {bad[0]!r} is not a number, but the labels are numbers"
                )
            as_float = isinstance(labels[0], float)
            cats = [float(c) if as_float else c for c in parsed_cats if c is not None]
        known = set(cats)
        for value, shown, line in zip(labels, raw, lines, strict=True):
            if value not in known:
                raise FormatError(
                    f"{path}, line {line}, field {names['label']}: label {shown!r} is not among "
                    f"--categories ({', '.join(texts)})"
                )
    elif labels is raw and level == "ordinal":
        order = sorted(set(raw))
        err_console.print(
            f"[yellow]warning:[/] ordinal labels are not numbers; using their sorted order "
            f"{escape(' < '.join(order[:8]))}{' ...' if len(order) > 8 else ''} "
            "(set it with --categories)",
            highlight=False,
        )
    return Ratings.from_long(  # numpy arrays take the vectorised path
        np.asarray(data["item"], dtype=str),
        np.asarray(data["annotator"], dtype=str),
        np.asarray(labels),
        categories=cats,
        level=level,  # type: ignore[arg-type]
    )


def _result_json(res: AgreementResult) -> dict[str, Any]:
    return {
        "value": res.value,
        "ci": list(res.ci) if res.ci is not None else None,
        "se": res.se,
        "ci_method": res.ci_method,
        "confidence": res.confidence if res.ci is not None else None,
        "n_items": res.n_items,
        "n_annotators": res.n_annotators,
        "n_pairable": res.n_pairable,
    }


# -------------------------------------------------------------------- agreement
@app.command(
    "agreement", short_help="Agreement coefficients with CIs, pairwise and per-annotator agreement."
)
def agreement_cmd(
    file: FileArg,
    item: ItemCol = None,
    annotator: AnnotatorCol = None,
    label: LabelCol = None,
    no_header: NoHeader = False,
    level: Annotated[
        Level, typer.Option("--level", help="Level of measurement for Krippendorff's alpha.")
    ] = Level.nominal,
    weights: Annotated[
        Weights,
        typer.Option(
            "--weights",
            help="Agreement weights for kappa, AC2, Scott's pi and percent agreement "
            "(on category values, or positions in the declared order).",
        ),
    ] = Weights.identity,
    categories: Annotated[
        str | None,
        typer.Option(
            "--categories",
            help="Comma-separated category order (e.g. low,mid,high); "
            "unused categories still count for Gwet's AC1 and Brennan–Prediger.",
            show_default=False,
        ),
    ] = None,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap",
            min=0,
            help="Bootstrap resamples for every CI (0: analytic CIs, none for alpha).",
        ),
    ] = 0,
    alpha_bootstrap: Annotated[
        AlphaBootstrap,
        typer.Option(
            "--alpha-bootstrap",
            help="How alpha is bootstrapped: resample items, or Krippendorff's bootstrap of "
            "pairable values (Hayes & Krippendorff 2007).",
        ),
    ] = AlphaBootstrap.items,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the bootstrap.", show_default=False)
    ] = None,
    confidence: Annotated[
        float,
        typer.Option(
            "--confidence", min=0.5, max=0.999999, help="Confidence level of the intervals."
        ),
    ] = 0.95,
    limit: Limit = 20,
    as_json: JsonFlag = False,
) -> None:
    """Agreement: percent agreement, Krippendorff's alpha, Fleiss' kappa, Gwet's AC1/AC2,
    Scott's pi, Brennan–Prediger, Cohen's kappa (two annotators), pairwise and per-annotator.

    Also ICC at the interval and ratio levels when every annotator rated every item, the
    pairwise Cohen's kappa matrix (summarised), each annotator against the others
    (leave-one-out) and per-category agreement. Labels are read as numbers for
    --level ordinal/interval/ratio and for linear or quadratic --weights.

    --json prints one object: n_items, n_annotators, n_annotations, level, weights,
    categories, then percent_agreement, krippendorff_alpha, fleiss_kappa, gwet_ac1 (gwet_ac2
    when weighted), scott_pi, brennan_prediger and cohen_kappa (exactly two annotators), each
    with value, ci (low and high, or null), se, ci_method, n_items, n_annotators, n_pairable;
    then icc, pairwise_kappa, per_annotator, per_category and notes.
    """
    from labelloop import stats

    with _errors(file):
        data, names = _read_long(
            file, item=item, annotator=annotator, label=label, no_header=no_header
        )
        r = _ratings(
            data, names, file, level=level.value, weights=weights.value, categories=categories
        )
        kw: dict[str, Any] = {"confidence": confidence, "n_boot": bootstrap, "seed": seed}
        wkw: dict[str, Any] = {"weights": weights.value, **kw}
        results: dict[str, AgreementResult] = {
            "percent_agreement": stats.percent_agreement(r, **wkw),
            "krippendorff_alpha": stats.krippendorff_alpha(
                r, level=level.value, bootstrap=alpha_bootstrap.value, **kw
            ),
            "fleiss_kappa": stats.fleiss_kappa(r, **wkw),
            "gwet_ac1" if weights is Weights.identity else "gwet_ac2": stats.gwet_ac(r, **wkw),
            "scott_pi": stats.scott_pi(r, **wkw),
            "brennan_prediger": stats.brennan_prediger(r, **wkw),
        }
        notes: list[str] = []
        if r.n_annotators == 2:
            results["cohen_kappa"] = stats.cohen_kappa(r, **wkw)
        pairwise = loo = None
        try:
            pairwise = stats.pairwise_kappa(r, weights=weights.value)
            loo = stats.leave_one_out(r)
        except ValueError as exc:  # e.g. an annotator rated an item twice
            notes.append(f"pairwise and leave-one-out agreement skipped: {exc}")
        per_cat = stats.per_category_agreement(r)
        icc: dict[str, AgreementResult] | None = None
        if level in (Level.interval, Level.ratio):
            try:
                icc = stats.intraclass_correlation(r, confidence=confidence)
            except ValueError as exc:
                notes.append(f"ICC skipped: {exc}")

    summary = _pairwise_summary(pairwise)
    per_annotator = _loo_rows(loo)
    cat_rows = [
        {"category": c, "kappa": k, "specific_agreement": s, "n_ratings": n}
        for c, k, s, n in zip(
            per_cat.categories.tolist(),
            per_cat.kappa.tolist(),
            per_cat.specific_agreement.tolist(),
            per_cat.n_ratings.tolist(),
            strict=True,
        )
    ]
    if as_json:
        payload: dict[str, Any] = {
            "file": str(file),
            "columns": names,
            "level": level.value,
            "weights": weights.value,
            "categories": r.categories.tolist(),
            "n_items": r.n_items,
            "n_annotators": r.n_annotators,
            "n_annotations": r.n_ratings,
            "bootstrap": bootstrap,
            "seed": seed,
            "confidence": confidence,
        }
        payload.update({name: _result_json(res) for name, res in results.items()})
        if icc is not None:
            payload["icc"] = {form: _result_json(res) for form, res in icc.items()}
        payload["pairwise_kappa"] = summary
        payload["per_annotator"] = per_annotator
        payload["per_category"] = cat_rows
        payload["notes"] = notes
        _emit(payload)
        return

    console.print(
        f"[bold]{escape(str(file))}[/]: {r.n_items} items, {r.n_annotators} annotators, "
        f"{r.n_ratings} annotations, "
        f"{r.n_categories} categories; level {level.value}, weights {weights.value}"
        + (f", {bootstrap} bootstrap resamples" if bootstrap else ""),
        highlight=False,
    )
    table = Table(title="Agreement")
    for col in ("statistic", "value", f"{confidence:.0%} CI", "CI method", "pairable"):
        table.add_column(col, justify="left" if col in ("statistic", "CI method") else "right")
    for name, res in results.items():
        table.add_row(
            name, _fmt(res.value), _fmt_ci(res.ci), res.ci_method or "—", str(res.n_pairable)
        )
    for form, res in (icc or {}).items():
        table.add_row(
            form, _fmt(res.value), _fmt_ci(res.ci), res.ci_method or "—", str(res.n_pairable)
        )
    console.print(table)
    if summary is not None:
        console.print(
            f"pairwise Cohen's kappa over {summary['n_pairs']} annotator pairs with shared items: "
            f"mean {_fmt(summary['mean'])}, median {_fmt(summary['median'])}, "
            f"min {_fmt(summary['min'])}, max {_fmt(summary['max'])} "
            f"(overlap-weighted mean {_fmt(summary['weighted_mean'])})",
            highlight=False,
        )
    if per_annotator:
        table = Table(title="Per annotator, against the others (lowest kappa first)")
        for col in ("annotator", "items shared", "% agreement", "kappa", "alpha without"):
            table.add_column(col, justify="left" if col == "annotator" else "right")
        rows = sorted(
            per_annotator, key=lambda d: d["kappa"] if d["kappa"] == d["kappa"] else math.inf
        )
        for row in rows[: limit or None]:
            table.add_row(
                escape(str(row["annotator"])),
                str(row["n_items"]),
                _fmt(row["percent_agreement"]),
                _fmt(row["kappa"]),
                _fmt(row["alpha_without"]),
            )
        if limit and len(rows) > limit:
            table.caption = f"{len(rows) - limit} more annotators (--limit 0 shows all)"
        console.print(table)
    table = Table(title="Per category")
    for col in ("category", "kappa", "specific agreement", "ratings"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for row in cat_rows[: limit or None]:
        table.add_row(
            escape(str(row["category"])),
            _fmt(row["kappa"]),
            _fmt(row["specific_agreement"]),
            f"{row['n_ratings']:g}",
        )
    console.print(table)
    for note in notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def _pairwise_summary(pairwise: Any) -> dict[str, Any] | None:
    import numpy as np

    if pairwise is None:
        return None
    na = len(pairwise.annotators)
    upper = np.triu_indices(na, k=1)
    kappa = pairwise.kappa[upper]
    overlap = pairwise.n_overlap[upper]
    ok = (overlap > 0) & np.isfinite(kappa)
    vals, wts = kappa[ok], overlap[ok]
    if len(vals) == 0:
        return {
            "n_pairs": 0,
            "mean": None,
            "median": None,
            "min": None,
            "max": None,
            "weighted_mean": None,
            "lowest": [],
        }
    order = np.argsort(vals)[:5]
    a_idx, b_idx = upper[0][ok][order], upper[1][ok][order]
    return {
        "n_pairs": len(vals),
        "mean": float(vals.mean()),
        "median": float(np.median(vals)),
        "min": float(vals.min()),
        "max": float(vals.max()),
        "weighted_mean": float((vals * wts).sum() / wts.sum()),
        "lowest": [
            {
                "annotators": [pairwise.annotators[a], pairwise.annotators[b]],
                "kappa": float(pairwise.kappa[a, b]),
                "n_overlap": int(pairwise.n_overlap[a, b]),
            }
            for a, b in zip(a_idx.tolist(), b_idx.tolist(), strict=True)
        ],
    }


def _loo_rows(loo: Any) -> list[dict[str, Any]]:
    if loo is None:
        return []
    return [
        {"annotator": a, "n_items": n, "percent_agreement": p, "kappa": k, "alpha_without": aw}
        for a, n, p, k, aw in zip(
            loo.annotators.tolist(),
            loo.n_items.tolist(),
            loo.percent_agreement.tolist(),
            loo.kappa.tolist(),
            loo.alpha_without.tolist(),
            strict=True,
        )
    ]


# ------------------------------------------------------------------------ infer
_ESTIMATORS: dict[Method, str] = {
    Method.majority: "MajorityVote",
    Method.wawa: "Wawa",
    Method.dawid_skene: "DawidSkene",
    Method.one_coin: "OneCoinDawidSkene",
    Method.glad: "GLAD",
    Method.mace: "MACE",
}
#: Methods whose ``annotator_skills_`` estimate an accuracy (share of correct labels).
_ACCURACY_SKILLS = {Method.majority, Method.wawa, Method.dawid_skene, Method.one_coin}


def _estimator(method: Method, *, max_iter: int | None, tol: float | None, seed: int | None) -> Any:
    """The estimator for ``method`` with the options it takes (others are refused)."""
    import inspect

    from labelloop.stats import inference

    cls = getattr(inference, _ESTIMATORS[method], None)
    if cls is None:
        raise ValueError(
            f"--method {method.value} is not available in this version of labelloop.stats"
        )
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    for flag, name, value in (("--max-iter", "max_iter", max_iter), ("--tol", "tol", tol)):
        if value is None:
            continue
        if name not in params:
            raise typer.BadParameter(f"does not apply to --method {method.value}", param_hint=flag)
        kwargs[name] = value
    if seed is not None:
        seed_name = next((n for n in ("random_state", "seed") if n in params), None)
        if seed_name is None:
            raise typer.BadParameter(
                f"does not apply to --method {method.value}", param_hint="--seed"
            )
        kwargs[seed_name] = seed
        if "tie_break" in params:  # majority vote: a seed means seeded random tie-breaking
            kwargs["tie_break"] = "random"
    return cls(**kwargs)


@app.command(
    "infer", short_help="Truth inference: labels, probabilities, annotator skills, priors."
)
def infer_cmd(
    file: FileArg,
    method: Annotated[
        Method, typer.Option("--method", help="Truth-inference model.")
    ] = Method.dawid_skene,
    item: ItemCol = None,
    annotator: AnnotatorCol = None,
    label: LabelCol = None,
    no_header: NoHeader = False,
    gold: Annotated[
        str | None,
        typer.Option(
            "--gold",
            help="Column with the known true label of the item, to report accuracy "
            "against it (not used for fitting).",
            show_default=False,
        ),
    ] = None,
    max_iter: Annotated[
        int | None,
        typer.Option(
            "--max-iter",
            min=1,
            help="Most EM iterations (EM methods; default: the model's).",
            show_default=False,
        ),
    ] = None,
    tol: Annotated[
        float | None,
        typer.Option(
            "--tol",
            min=0.0,
            help="Stop when the log-likelihood changes less than this "
            "per rating (EM methods; default: the model's).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed: MACE's random restarts; for majority, break ties at random with it "
            "(without it, ties go to the first label).",
            show_default=False,
        ),
    ] = None,
    limit: Limit = 20,
    as_json: JsonFlag = False,
) -> None:
    """Truth inference: each item's most likely label with its probabilities, each annotator's
    skill (and confusion matrix), the class priors and the log-likelihood.

    --json prints one object: items (item, label, probabilities by label), annotators
    (annotator, n_annotations, accuracy for majority, wawa, dawid-skene and one-coin or
    skill for glad and mace, and confusion as true label -> observed label -> probability
    for dawid-skene and mace), class_priors (by label), log_likelihood (null for the votes),
    iterations, and gold (column, n_items, accuracy) with --gold.
    """
    import numpy as np

    with _errors(file):
        extra: dict[str, str | None] | None = {"gold": gold} if gold is not None else None
        data, names = _read_long(
            file, item=item, annotator=annotator, label=label, no_header=no_header, extra=extra
        )
        from labelloop.stats import Ratings

        r = Ratings.from_long(
            np.asarray(data["item"], dtype=str),
            np.asarray(data["annotator"], dtype=str),
            np.asarray(data["label"], dtype=str),
        )
        model = _estimator(method, max_iter=max_iter, tol=tol, seed=seed)
        model.fit(r)
        gold_report = (
            _gold_accuracy(r, model.labels_, data, names, file) if gold is not None else None
        )

    cats = [str(c) for c in r.categories.tolist()]
    items = [
        {"item": it, "label": lab, "probabilities": dict(zip(cats, row, strict=True))}
        for it, lab, row in zip(
            r.items.tolist(), model.labels_.tolist(), model.probas_.tolist(), strict=True
        )
    ]
    skills = np.asarray(model.annotator_skills_, dtype=np.float64)
    confusions = getattr(model, "confusions_", None)
    n_by_annotator = np.bincount(r.annotator, minlength=r.n_annotators)
    annotators: list[dict[str, Any]] = []
    for j, name in enumerate(r.annotators.tolist()):
        row: dict[str, Any] = {"annotator": name, "n_annotations": int(n_by_annotator[j])}
        if method in _ACCURACY_SKILLS:
            row["accuracy"] = float(skills[j])
        else:
            row["skill"] = float(skills[j])
        if confusions is not None and method is not Method.one_coin:
            row["confusion"] = {
                cats[c]: dict(zip(cats, confusions[j, c].tolist(), strict=True))
                for c in range(len(cats))
            }
        annotators.append(row)
    priors = dict(zip(cats, np.asarray(model.priors_).tolist(), strict=True))
    ll = model.log_likelihood_
    payload: dict[str, Any] = {
        "file": str(file),
        "columns": names,
        "method": method.value,
        "n_items": r.n_items,
        "n_annotators": r.n_annotators,
        "n_annotations": r.n_ratings,
        "categories": cats,
        "items": items,
        "annotators": annotators,
        "class_priors": priors,
        "log_likelihood": ll,
        "iterations": int(model.n_iter_),
    }
    if gold_report is not None:
        payload["gold"] = gold_report
    if as_json:
        _emit(payload)
        return

    console.print(
        f"[bold]{escape(str(file))}[/]: {r.n_items} items, {r.n_annotators} annotators, "
        f"{r.n_ratings} annotations; "
        f"method {method.value}, {model.n_iter_} iterations, log-likelihood {_fmt(ll)}",
        highlight=False,
    )
    if gold_report is not None:
        console.print(
            f"accuracy against {escape(names['gold'])}: {_fmt(gold_report['accuracy'])} "
            f"on {gold_report['n_items']} items with a gold label",
            highlight=False,
        )
    table = Table(title="Class priors")
    table.add_column("label")
    table.add_column("prior", justify="right")
    for cat, p in priors.items():
        table.add_row(escape(cat), _fmt(p))
    console.print(table)
    skill_name = "accuracy" if method in _ACCURACY_SKILLS else "skill"
    table = Table(title=f"Annotators (lowest {skill_name} first)")
    table.add_column("annotator")
    table.add_column("annotations", justify="right")
    table.add_column(skill_name, justify="right")
    ranked = sorted(annotators, key=lambda d: d[skill_name])
    for row in ranked[: limit or None]:
        table.add_row(
            escape(str(row["annotator"])), str(row["n_annotations"]), _fmt(row[skill_name])
        )
    if limit and len(ranked) > limit:
        table.caption = (
            f"{len(ranked) - limit} more annotators (--limit 0 shows all; --json for confusions)"
        )
    console.print(table)
    table = Table(title="Items (least certain first)")
    table.add_column("item")
    table.add_column("label")
    table.add_column("probability", justify="right")
    certainty = model.probas_.max(axis=1)
    order = np.argsort(certainty, kind="stable")
    for i in order[: limit or None].tolist():
        table.add_row(
            escape(str(items[i]["item"])), escape(str(items[i]["label"])), _fmt(float(certainty[i]))
        )
    if limit and len(items) > limit:
        table.caption = f"{len(items) - limit} more items (--limit 0 shows all)"
    console.print(table)


def _gold_accuracy(
    r: Ratings, labels: Any, data: dict[str, list[Any]], names: dict[str, str], path: Path
) -> dict[str, Any]:
    """Accuracy of the inferred labels against the gold column (one gold value per item)."""
    truth: dict[Any, tuple[str, int]] = {}
    for it, g, line in zip(data["item"], data["gold"], data["_line"], strict=True):
        seen = truth.setdefault(it, (g, line))
        if seen[0] != g:
            raise FormatError(
                f"{path}, line {line}, field {names['gold']}: gold label {g!r} of item {it!r} differs "
                f"from {seen[0]!r} on line {seen[1]}"
            )
    inferred = dict(zip(r.items.tolist(), [str(v) for v in labels.tolist()], strict=True))
    hits = [inferred[it] == g for it, (g, _) in truth.items()]
    return {
        "column": names["gold"],
        "n_items": len(hits),
        "accuracy": sum(hits) / len(hits) if hits else None,
    }


# ----------------------------------------------------------------- label-issues
@app.command(
    "label-issues", short_help="Likely label errors from a model's predicted probabilities."
)
def label_issues_cmd(
    file: FileArg,
    pred_probs: Annotated[
        Path,
        typer.Option(
            "--pred-probs",
            metavar="PROBS",
            help="Out-of-sample predicted probabilities: an item column and one column per class, "
            "named exactly as the labels are written in FILE (CSV/TSV/JSONL/Parquet).",
            show_default=False,
        ),
    ],
    item: ItemCol = None,
    annotator: AnnotatorCol = None,
    label: LabelCol = None,
    no_header: NoHeader = False,
    probs_item: Annotated[
        str | None,
        typer.Option(
            "--probs-item",
            help="Item column of PROBS (default: the same aliases as --item).",
            show_default=False,
        ),
    ] = None,
    filter_by: Annotated[
        Filter, typer.Option("--filter", help="Confident-learning filter (cleanlab's filter_by).")
    ] = Filter.prune_by_noise_rate,
    rank_by: Annotated[
        RankBy,
        typer.Option("--rank-by", help="Label quality score used to rank the flagged items."),
    ] = RankBy.self_confidence,
    limit: Limit = 20,
    as_json: JsonFlag = False,
) -> None:
    """Label errors by confident learning: items whose given label the model's out-of-sample
    probabilities contradict, most likely error first.

    FILE gives each item's label (long form; the annotator column is optional). An item with
    several ratings gets its majority-vote label (a tie goes to the label that sorts first).

    PROBS has one row per item: an item column and one probability column per class, named
    exactly as the labels are written in FILE, each row summing to 1 (within 0.01), e.g. the
    header item,cat,dog,fox. A label without a class column, an item missing on either side,
    a repeated item or a value outside 0..1 is an error naming PROBS and the line.

    --json prints one object: filter, rank_by, classes, n_items, n_issues, thresholds, and
    issues ranked most likely first, each with rank, item, given_label, suggested_label
    (the model's most probable class), label_quality and n_annotations.
    """
    import numpy as np

    from labelloop.stats import find_label_issues

    with _errors(file):
        given, n_ratings, items = _given_labels(
            file, item=item, annotator=annotator, label=label, no_header=no_header
        )
        classes, probs = _read_probs(
            pred_probs, items, given, probs_item=probs_item, labels_path=file
        )
        code = {c: k for k, c in enumerate(classes)}
        labels = np.fromiter((code[g] for g in given), dtype=np.int64, count=len(given))
        result = find_label_issues(labels, probs, filter_by=filter_by.value, rank_by=rank_by.value)

    suggested = probs.argmax(axis=1)
    issues = [
        {
            "rank": rank,
            "item": items[i],
            "given_label": given[i],
            "suggested_label": classes[int(suggested[i])],
            "label_quality": float(result.quality[i]),
            "n_annotations": int(n_ratings[i]),
        }
        for rank, i in enumerate(result.ranked.tolist(), start=1)
    ]
    if as_json:
        _emit(
            {
                "file": str(file),
                "pred_probs": str(pred_probs),
                "filter": filter_by.value,
                "rank_by": rank_by.value,
                "classes": classes,
                "n_items": len(items),
                "n_issues": result.n_issues,
                "thresholds": dict(zip(classes, result.thresholds.tolist(), strict=True)),
                "issues": issues,
            }
        )
        return
    console.print(
        f"[bold]{escape(str(file))}[/]: {len(items)} items, {len(classes)} classes; "
        f"{result.n_issues} likely label "
        f"errors ({result.noise_rate:.1%}) by {filter_by.value}, ranked by {rank_by.value}",
        highlight=False,
    )
    table = Table(title="Likely label errors (most likely first)")
    for col in ("rank", "item", "given", "suggested", "label quality", "ratings"):
        table.add_column(
            col, justify="right" if col in ("rank", "label quality", "ratings") else "left"
        )
    for row in issues[: limit or None]:
        table.add_row(
            str(row["rank"]),
            escape(str(row["item"])),
            escape(str(row["given_label"])),
            escape(str(row["suggested_label"])),
            _fmt(row["label_quality"]),
            str(row["n_annotations"]),
        )
    if limit and len(issues) > limit:
        table.caption = f"{len(issues) - limit} more (--limit 0 shows all)"
    console.print(table)


def _given_labels(
    path: Path, *, item: str | None, annotator: str | None, label: str | None, no_header: bool
) -> tuple[list[str], list[int], list[str]]:
    """One given label per item (majority vote when rated more than once), ratings per item, item ids."""
    from labelloop.formats.columns import column_names, read_columns, resolve_columns

    header = not no_header
    wanted: dict[str, str | None] = {"item": item, "label": label}
    if annotator is not None:
        wanted["annotator"] = annotator
    data = read_columns(path, wanted, header=header)
    resolve_columns(column_names(path, header=header), wanted, path)
    if not data["label"]:
        raise FormatError(f"{path}: no labels (the file has a header but no rows)")
    votes: dict[str, dict[str, int]] = {}
    for it, lab in zip(data["item"], data["label"], strict=True):
        counts = votes.setdefault(it, {})
        counts[lab] = counts.get(lab, 0) + 1
    items = list(votes)
    return [_majority(votes[it]) for it in items], [sum(votes[it].values()) for it in items], items


def _majority(counts: dict[str, int]) -> str:
    """The most frequent label; ties go to the smallest label as text (deterministic)."""
    best = max(counts.values())
    return min(lab for lab, n in counts.items() if n == best)


def _read_probs(
    path: Path, items: list[str], given: list[str], *, probs_item: str | None, labels_path: Path
) -> tuple[list[str], Any]:
    """Classes (PROBS column order) and the items × classes probability matrix aligned with ``items``."""
    import numpy as np

    from labelloop.formats.columns import column_names, read_columns, resolve_columns

    columns = column_names(path)
    item_col = resolve_columns(columns, {"item": probs_item}, path)["item"]
    classes = [c for c in columns if c != item_col]
    if len(classes) < 2:
        raise FormatError(
            f"{path}: expected an item column and one probability column per class (at least two); "
            f"columns are: {', '.join(columns)}"
        )
    unknown = sorted(set(given) - set(classes))
    if unknown:
        raise FormatError(
            f"{path}: no probability column for label(s) {', '.join(map(repr, unknown[:5]))} of "
            f"{labels_path}; class columns are: {', '.join(classes)} (name them as the labels are written)"
        )
    roles: dict[str, str | None] = {"item": item_col, **{f"class {c}": c for c in classes}}
    data = read_columns(path, roles, text_roles=("item",), with_lines=True)
    n = len(data["item"])
    probs = np.empty((n, len(classes)))
    for k, c in enumerate(classes):
        for i, (v, line) in enumerate(zip(data[f"class {c}"], data["_line"], strict=True)):
            try:
                p = float(v)
            except (TypeError, ValueError):
                raise FormatError(
                    f"{path}, line {line}, field {c}: {v!r} is not a probability"
                ) from None
            if not (0.0 <= p <= 1.0):
                raise FormatError(
                    f"{path}, line {line}, field {c}: probability {v!r} is outside [0, 1]"
                )
            probs[i, k] = p
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 0.01)
    if len(bad):
        i = int(bad[0])
        raise FormatError(
            f"{path}, line {data['_line'][i]}: probabilities sum to {sums[i]:.4f}, not 1 "
            f"({len(bad)} row(s) off by more than 0.01)"
        )
    row_of: dict[str, int] = {}
    for i, (it, line) in enumerate(zip(data["item"], data["_line"], strict=True)):
        if it in row_of:
            raise FormatError(f"{path}, line {line}, field {item_col}: item {it!r} appears twice")
        row_of[it] = i
    missing = [it for it in items if it not in row_of]
    if missing:
        raise FormatError(
            f"{path}: no probabilities for {len(missing)} item(s) of {labels_path}, e.g. "
            f"{', '.join(map(repr, missing[:5]))}"
        )
    extra = sorted(set(row_of) - set(items))
    if extra:
        raise FormatError(
            f"{path}: {len(extra)} item(s) have probabilities but no label in {labels_path}, e.g. "
            f"{', '.join(map(repr, extra[:5]))}"
        )
    return classes, probs[[row_of[it] for it in items]]
