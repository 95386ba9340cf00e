"""Audit reports with hostile names: the Markdown and HTML renderers show what was typed
and add no markup, links or table cells. Pure: a report document built by hand."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from markdown_it import MarkdownIt

from labelloop.audits.render import md_text, to_html, to_markdown

#: Names as someone could type them: Markdown, HTML, links, table pipes, line breaks.
EVIL = [
    "*bold* _it_ `code` ~~gone~~",
    "a|b|c",
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "![img](http://evil.example/x.png)",
    "<https://evil.example>",
    "http://evil.example www.evil.example",
    "line one\nline two\r\n# heading",
    "\\*not bold\\* &lt;b&gt; &amp;",
    "$x^2$ {#id} <!-- c -->",
    "- item",
    "1. item",
    "> quote",
    "    indented code",
    "<img src=x onerror=alert(1)>",
]


def _rate(value: float = 0.1) -> dict[str, Any]:
    return {"value": value, "ci": [0.05, 0.2], "n": 20}


def _report() -> dict[str, Any]:
    groups = [{"group": name, "reviewed": 20, "errors": 2, "error_rate": _rate()} for name in EVIL]
    return {
        "run": {
            "id": 7,
            "policy": "**weekly** <b>|x|</b>",
            "project": "[proj](javascript:alert(1))",
            "window_start": "2026-01-05T00:00:00+00:00",
            "window_end": "2026-01-12T00:00:00+00:00",
            "population": 400,
            "sample": 60,
            "design": "stratified",
            "seed": 3,
            "confidence": 0.95,
            "strata": ["annotator"],
            "notes": ["# not a heading", "<script>x</script> | [a](b)"],
        },
        "reviews": {"judged": 50, "unsure": 2, "unreviewed": 8},
        "error_rate": {
            "overall": _rate(),
            "by_stratum": [
                {"stratum": name, "population": 10, "sample": 5, "error_rate": _rate()}
                for name in EVIL
            ],
            "by_annotator": groups,
            "by_label": groups,
            "by_segment": {"lang|<u>x</u>": groups},
        },
        "agreement": {
            "krippendorff_alpha": {"value": 0.7, "ci": [0.6, 0.8], "n_items": 40},
            "pairwise_kappa": {"mean": 0.65, "pairs": 3},
            "reviewers": {"percent_agreement": _rate(0.9)},
        },
        "gold": {"accuracy": _rate(0.8)},
        "consensus": {"agreement_with_reviewers": _rate(0.85)},
        "edge_cases": {"population_share": 0.1, "share_of_audited": 0.2},
        "turnaround": {
            "hours_to_first_label": {"median": 1.0, "p90": 2.0},
            "hours_to_verdict": {"median": 3.0, "p90": 4.0},
        },
        "patterns": [
            {
                "dimension": name,
                "group": name,
                "errors": 5,
                "reviewed": 10,
                "rate": _rate(0.5),
                "rest_rate": _rate(0.1),
                "q_value": 0.01,
            }
            for name in EVIL
        ],
        "error_categories": [
            {"category": name, "count": 3, "share": 0.2, "severity": {"high": 2, "low": 1}}
            for name in EVIL
        ],
        "confusions": [{"given": name, "corrected": name[::-1], "count": 2} for name in EVIL],
        "recommendations": [
            {
                "priority": n + 1,
                "action": f"Train {name} on telling {name!r} apart",
                "kind": "targeted training",
                "impact": 1.0,
                "feasibility": 0.8,
                "evidence": f"patterns[{n}]",
            }
            for n, name in enumerate(EVIL)
        ],
        "comparison": {"error_rate": {"delta": 0.01, "p_value": 0.5, "significant": False}},
    }


def _shown(text: str) -> str:
    """What a name looks like on one line: runs of whitespace are one space."""
    return re.sub(r"\s+", " ", text)


class _Page(HTMLParser):
    """Tags, headings, list items and tables (rows of cell texts) of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.headings: list[str] = []
        self.items: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        if tag in ("h1", "h2", "li", "td", "th"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("h1", "h2", "li", "td", "th") or self._text is None:
            return
        text = "".join(self._text).strip()
        self._text = None
        if tag in ("td", "th"):
            self.tables[-1][-1].append(text)
        elif tag == "li":
            self.items.append(text)
        else:
            self.headings.append(text)

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _column(table: list[list[str]], index: int = 0) -> list[str]:
    return [row[index] for row in table[1:]]


def test_md_text_renders_as_the_text_it_escapes() -> None:
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    for name in EVIL:
        page = _parse(md.render(f"- x {md_text(name)}"))
        assert [_shown(item) for item in page.items] == [_shown(f"x {name}".strip())], name
        assert set(page.tags) == {"ul", "li"}, name


def test_markdown_report_shows_hostile_names_as_typed() -> None:
    rep = _report()
    text = to_markdown(rep)
    # no raw HTML and nothing GitHub would turn into a link by itself
    assert "<" not in text and "http:" not in text and "www." not in text
    page = _parse(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text))
    assert set(page.tags) <= {"h1", "h2", "p", "strong", "ul", "li"} | {
        "table", "thead", "tbody", "tr", "th", "td"
    }  # fmt: skip
    assert page.tags.count("strong") == 1  # only the project name is bold
    assert page.headings[0] == f"Audit report: {rep['run']['policy']} (run 7)"
    assert "Error rate by lang|<u>x</u>" in page.headings
    assert page.items == rep["run"]["notes"]
    shown = [_shown(name).strip() for name in EVIL]
    for table in page.tables:
        assert all(len(row) == len(table[0]) for row in table), table[0]  # no extra cells
    by_title = dict(zip(page.headings[1:], page.tables[1:], strict=True))
    for title in ("Error rate by stratum", "Error rate by annotator", "Error rate by label"):
        assert _column(by_title[title]) == shown, title
    segment = by_title["Error rate by lang|<u>x</u>"]
    assert segment[0][0] == "lang|<u>x</u>" and _column(segment) == shown
    patterns = next(t for h, t in by_title.items() if h.startswith("Systemic patterns"))
    assert _column(patterns, 0) == shown and _column(patterns, 1) == shown
    assert _column(by_title["Error categories"]) == shown
    confusions = by_title["Label confusions (given → corrected)"]
    assert _column(confusions, 1) == [_shown(name[::-1]).strip() for name in EVIL]
    actions = _column(next(t for h, t in by_title.items() if h.startswith("Recommendations")), 1)
    assert actions == [_shown(r["action"]) for r in rep["recommendations"]]


@pytest.mark.parametrize("name", EVIL)
def test_markdown_table_cell_keeps_its_row(name: str) -> None:
    rep = _report()
    rep["error_categories"] = [{"category": name, "count": 3, "share": 0.2, "severity": {}}]
    lines = to_markdown(rep).splitlines()
    row = lines[lines.index("## Error categories") + 4]
    assert row.startswith("| ") and row.endswith(" |")
    assert len(re.findall(r"(?<!\\)\|", row)) == 5  # four cells: no pipe of the name splits


def test_html_report_escapes_hostile_names() -> None:
    rep = _report()
    page_text = to_html(rep)
    assert "<script" not in page_text and "<img" not in page_text and "<u>" not in page_text
    page = _parse(page_text)
    assert set(page.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2"} | {
        "p", "b", "span", "ul", "li", "table", "thead", "tbody", "tr", "th", "td"
    } | {"svg", "text", "rect", "line"}  # fmt: skip
    assert page.items == rep["run"]["notes"]
    by_title = dict(zip(page.headings[1:], page.tables[1:], strict=False))
    assert _column(by_title["Error categories"]) == [n.strip() for n in EVIL]
    assert "Error rate by lang|<u>x</u>" in page.headings
