"""Render an audit report as Markdown, self-contained HTML (inline CSS and SVG), or JSON.

Names in a report (policy, project, annotators, labels, segments, error categories,
and the notes and actions built from them) are whatever people typed. Both renderers
treat them as plain text: Markdown escapes them with :func:`md_text`, HTML with
:func:`html.escape`, so a name shows as typed and cannot add markup, links or table
cells. Numbers formatted here are not escaped.
"""

from __future__ import annotations

import html
import json
import re
import string
from collections.abc import Callable
from typing import Any

#: ASCII punctuation that means nothing in any Markdown flavour, so it stays readable.
_MD_PLAIN = ",;?%'\"/"
#: Character -> Markdown that renders as that character: entities for ``& < >``,
#: backslash escapes for other punctuation, U+FFFD for control characters.
_MD_ESCAPES: dict[int, str] = {
    **{ord(ch): "\\" + ch for ch in string.punctuation if ch not in _MD_PLAIN},
    **{ord(ch): ref for ch, ref in {"&": "&amp;", "<": "&lt;", ">": "&gt;"}.items()},
    **{code: "\ufffd" for code in (*range(0x20), *range(0x7F, 0xA0))},
}
_WHITESPACE = re.compile(r"\s+")


def md_text(value: object) -> str:
    """``value`` as Markdown that renders as exactly that text, on one line.

    ``&``, ``<`` and ``>`` become entities (no HTML, no autolinks), other ASCII
    punctuation except ``, ; ? % ' " /`` is backslash-escaped (no emphasis, code,
    links, images, headings, lists, table cells, math or bare-URL autolinks: CommonMark
    and GitHub read ``\\x`` as a literal ``x``), runs of whitespace (line breaks and
    tabs included) become one space, and other control characters U+FFFD.
    """
    return _WHITESPACE.sub(" ", str(value)).translate(_MD_ESCAPES)


def _plain(value: object) -> str:
    """Text as it is (the HTML renderer escapes on output)."""
    return str(value)


def _pct(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    text = f"{entry['value']:.1%}"
    ci = entry.get("ci")
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" [{ci[0]:.1%}, {ci[1]:.1%}]"
    if entry.get("n") is not None:
        text += f" (n={entry['n']})"
    return text


def _num(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    text = f"{entry['value']:.3f}"
    ci = entry.get("ci")
    if ci and ci[0] is not None:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    n = entry.get("n_items", entry.get("n"))
    if n is not None:
        text += f" (n={n})"
    return text


def _sections(
    rep: dict[str, Any], text: Callable[[object], str]
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) tables shared by the Markdown and HTML renderers; every
    value from the data passes through ``text`` (the renderer's escape)."""
    er = rep["error_rate"]
    out: list[tuple[str, list[str], list[list[str]]]] = []
    out.append(
        (
            "Error rate by stratum",
            ["stratum", "population", "sample", "error rate [CI] (n)"],
            [
                [
                    text(s["stratum"]),
                    str(s.get("population", "")),
                    str(s.get("sample", "")),
                    _pct(s["error_rate"]),
                ]
                for s in er.get("by_stratum", [])
            ],
        )
    )
    for title, key in (
        ("Error rate by annotator", "by_annotator"),
        ("Error rate by label", "by_label"),
    ):
        out.append(
            (
                title,
                ["group", "reviewed", "errors", "error rate [CI] (n)"],
                [
                    [text(g["group"]), str(g["reviewed"]), str(g["errors"]), _pct(g["error_rate"])]
                    for g in er.get(key, [])
                ],
            )
        )
    if rep.get("by_guideline_version"):
        out.append(
            (
                "By guideline version",
                [
                    "version",
                    "annotations",
                    "reviewed",
                    "errors",
                    "error rate [CI] (n)",
                    "alpha [CI]",
                ],
                [
                    [
                        text(g["version"] or "none"),
                        str(g["annotations"]),
                        str(g["reviewed"]),
                        str(g["errors"]),
                        _pct(g["error_rate"]),
                        _num(g["krippendorff_alpha"]),
                    ]
                    for g in rep["by_guideline_version"]
                ],
            )
        )
    for seg, groups in er.get("by_segment", {}).items():
        out.append(
            (
                f"Error rate by {text(seg)}",
                [text(seg), "reviewed", "errors", "error rate [CI] (n)"],
                [
                    [text(g["group"]), str(g["reviewed"]), str(g["errors"]), _pct(g["error_rate"])]
                    for g in groups
                ],
            )
        )
    out.append(
        (
            "Systemic patterns (Fisher exact, Benjamini–Hochberg q ≤ 0.05)",
            ["dimension", "group", "errors / reviewed", "rate", "rest", "q"],
            [
                [
                    text(p["dimension"]),
                    text(p["group"]),
                    f"{p['errors']} / {p['reviewed']}",
                    _pct(p["rate"]),
                    _pct(p["rest_rate"]),
                    f"{p['q_value']:.4f}",
                ]
                for p in rep.get("patterns", [])
            ],
        )
    )
    out.append(
        (
            "Error categories",
            ["category", "count", "share", "severity"],
            [
                [
                    text(c["category"]),
                    str(c["count"]),
                    f"{c['share']:.0%}",
                    text(", ".join(f"{k} {v}" for k, v in c["severity"].items())),
                ]
                for c in rep.get("error_categories", [])
            ],
        )
    )
    out.append(
        (
            "Label confusions (given → corrected)",
            ["given", "corrected", "count"],
            [
                [text(c["given"]), text(c["corrected"]), str(c["count"])]
                for c in rep.get("confusions", [])
            ],
        )
    )
    out.append(
        (
            "Recommendations (by impact × feasibility)",
            ["#", "action", "kind", "impact", "feasibility", "evidence"],
            [
                [
                    str(r["priority"]),
                    text(r["action"]),
                    text(r["kind"]),
                    str(r["impact"]),
                    str(r["feasibility"]),
                    text(r["evidence"]),
                ]
                for r in rep.get("recommendations", [])
            ],
        )
    )
    return out


def _headline(rep: dict[str, Any]) -> list[tuple[str, str]]:
    ag = rep.get("agreement", {})
    cons = rep.get("consensus", {})
    edge = rep.get("edge_cases", {})
    ta = rep.get("turnaround", {})
    rows = [
        ("Population error rate (design-weighted)", _pct(rep["error_rate"]["overall"])),
        ("Krippendorff's alpha among annotators", _num(ag.get("krippendorff_alpha"))),
        (
            "Mean pairwise Cohen's kappa",
            "–"
            if not ag.get("pairwise_kappa", {}).get("mean")
            else f"{ag['pairwise_kappa']['mean']:.3f} ({ag['pairwise_kappa']['pairs']} pairs)",
        ),
        ("Double-review agreement", _pct(ag.get("reviewers", {}).get("percent_agreement"))),
        ("Accuracy against gold", _pct(rep.get("gold", {}).get("accuracy"))),
        ("Dawid–Skene consensus agrees with reviewers", _pct(cons.get("agreement_with_reviewers"))),
        (
            "Edge cases: share of population / of audited",
            f"{edge.get('population_share') or 0:.1%} / {edge.get('share_of_audited') or 0:.1%}",
        ),
        (
            "Turnaround to first label / to verdict (median, p90 hours)",
            f"{ta.get('hours_to_first_label', {}).get('median')}, {ta.get('hours_to_first_label', {}).get('p90')} / "
            f"{ta.get('hours_to_verdict', {}).get('median')}, {ta.get('hours_to_verdict', {}).get('p90')}",
        ),
    ]
    comp = rep.get("comparison")
    if comp and comp.get("error_rate"):
        d = comp["error_rate"]
        rows.append(
            (
                "Change in error rate since the previous run",
                f"{d['delta']:+.1%} (p={d['p_value']:.3f}{', significant' if d['significant'] else ''})",
            )
        )
    return rows


def to_markdown(rep: dict[str, Any]) -> str:
    """The report as Markdown (CommonMark with GitHub tables); names are escaped with
    :func:`md_text`."""
    run = rep["run"]
    t = md_text
    lines = [
        f"# Audit report: {t(run['policy'])} (run {run['id']})",
        "",
        f"Project **{t(run['project'])}**, window {run['window_start']} to {run['window_end']}. "
        f"Population {run['population']} annotations, sample {run['sample']} ({t(run['design'])} design, seed {run['seed']}); "
        f"{rep['reviews']['judged']} judged, {rep['reviews']['unsure']} unsure, {rep['reviews']['unreviewed']} unreviewed. "
        f"Intervals at {run['confidence']:.0%}.",
        "",
    ]
    lines += [f"- {t(note)}" for note in run.get("notes", [])]
    lines += ["", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _headline(rep)]
    for title, header, rows in _sections(rep, md_text):
        lines += ["", f"## {title}", ""]
        if not rows:
            lines.append("_none_")
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d232b;max-width:1100px;margin:2em auto;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #d9dee5;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #d9dee5;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#5b6673}svg text{font:11px system-ui,sans-serif;fill:#1d232b}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}
"""


def _bar_chart(title: str, rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Horizontal bars of rates with CI whiskers, as inline SVG (with a title for screen readers)."""
    rows = [(label, e) for label, e in rows if e and e.get("value") is not None]
    if not rows:
        return ""
    width, left, bar_h = 720, 260, 18
    height = 24 + bar_h * len(rows) + 20
    top = max(max((e.get("ci") or [0, e["value"]])[1] or 0, e["value"]) for _, e in rows)
    scale_max = min(1.0, max(0.05, top * 1.1))
    span = width - left - 60

    def x(v: float) -> float:
        return float(left + span * (v / scale_max))

    parts = [
        f'<svg role="img" aria-label="{html.escape(title)}" viewBox="0 0 {width} {height}" width="100%">',
        f"<title>{html.escape(title)}</title>",
    ]
    for i, (label, e) in enumerate(rows):
        y = 20 + i * bar_h
        parts.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(label[:42])}</text>'
        )
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{max(x(e["value"]) - left, 1):.1f}" height="{bar_h - 6}" fill="#4c78a8"/>'
        )
        ci = e.get("ci")
        if ci and ci[0] is not None and ci[1] is not None:
            parts.append(
                f'<line x1="{x(ci[0]):.1f}" x2="{x(min(ci[1], scale_max)):.1f}" y1="{y + 9}" y2="{y + 9}" stroke="#1d232b" stroke-width="1.5"/>'
            )
        parts.append(
            f'<text x="{x(min((ci or [0, e["value"]])[1] or e["value"], scale_max)) + 4:.1f}" y="{y + 12}">{e["value"]:.1%}</text>'
        )
    axis_y = 20 + bar_h * len(rows) + 4
    parts.append(
        f'<line x1="{left}" x2="{left + span}" y1="{axis_y}" y2="{axis_y}" stroke="#8a94a0"/>'
    )
    for t in (0, scale_max / 2, scale_max):
        parts.append(
            f'<text x="{x(t):.1f}" y="{axis_y + 13}" text-anchor="middle" class="muted">{t:.0%}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(rep: dict[str, Any]) -> str:
    run = rep["run"]
    er = rep["error_rate"]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Audit report: {html.escape(str(run['policy']))} (run {run['id']})</title><style>{CSS}</style></head><body>",
        f"<h1>Audit report: {html.escape(str(run['policy']))} <span class='muted'>run {run['id']}</span></h1>",
        f"<p>Project <b>{html.escape(run['project'])}</b>, window {html.escape(run['window_start'])} to {html.escape(run['window_end'])}. "
        f"Population {run['population']} annotations, sample {run['sample']} ({html.escape(run['design'])} design, seed {run['seed']}); "
        f"{rep['reviews']['judged']} judged, {rep['reviews']['unsure']} unsure, {rep['reviews']['unreviewed']} unreviewed. Intervals at {run['confidence']:.0%}.</p>",
    ]
    if run.get("notes"):
        out.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in run["notes"]) + "</ul>")
    out.append(_table(["figure", "value"], [[k, v] for k, v in _headline(rep)]))
    out.append("<h2>Error rate by stratum</h2>")
    out.append(
        _bar_chart(
            "Error rate by stratum with confidence intervals",
            [(s["stratum"], s["error_rate"]) for s in er.get("by_stratum", [])],
        )
    )
    if run.get("strata") != ["annotator"]:  # otherwise the chart above shows the same
        out.append("<h2>Error rate by annotator</h2>")
        out.append(
            _bar_chart(
                "Error rate by annotator with confidence intervals",
                [(g["group"], g["error_rate"]) for g in er.get("by_annotator", [])],
            )
        )
    for title, header, rows in _sections(rep, _plain):
        out.append(f"<h2>{html.escape(title)}</h2>")
        out.append(_table(header, rows))
    out.append("</body></html>")
    return "\n".join(out)


def to_json(rep: dict[str, Any]) -> str:
    return json.dumps(rep, indent=2, sort_keys=True, ensure_ascii=False)


RENDERERS = {"md": to_markdown, "html": to_html, "json": to_json}
