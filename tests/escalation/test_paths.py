"""Escalation paths as leads write them: parsing with errors that name the level, SLAs
in minutes, hours, days and business days, and the project's own paths."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from labelloop.errors import ValidationFailed
from labelloop.escalation.paths import Level, due_after, parse, sla_text

WED = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)  # a Wednesday
FRI = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
SAT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def test_parse_the_issue_example() -> None:
    assert parse("reviewer:24h, adjudicator:48h, lead:5bd".replace("reviewer", "auditor")) == [
        Level("auditor", 1440),
        Level("adjudicator", 2880),
        Level("lead", "5bd"),
    ]
    assert parse("lead:30m; owner:1.5h") == [Level("lead", 30), Level("owner", 90)]
    assert [lv.text() for lv in parse("lead:2d, owner:90m")] == ["lead:48h", "owner:90m"]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ("", "levels", "at least one level"),
        ("lead", "levels[1]", "not 'role:SLA'"),
        ("lead:24h, boss:1h", "levels[2]", "unknown role 'boss'"),
        ("lead:0m", "levels[1]", "1 minute to a year"),
        ("lead:400d", "levels[1]", "1 minute to a year"),
        ("lead:1.5bd", "levels[1]", "whole business days"),
        (", ".join(["lead:1h"] * 9), "levels", "at most 8 levels"),
    ],
)
def test_parse_names_the_level_that_is_wrong(spec: str, field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse(spec)
    assert words in str(exc.value)
    assert exc.value.violations[0].field == field


def test_due_after_minutes_and_business_days() -> None:
    assert due_after(WED, 90) == datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert due_after(WED, "5bd") == datetime(2026, 12, 9, 10, 30, tzinfo=UTC)  # next Wednesday
    assert due_after(FRI, "1bd") == datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # Monday
    assert due_after(FRI, "2bd") == datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
    # a weekend start counts from Monday 00:00: one business day ends Tuesday 00:00
    assert due_after(SAT, "1bd") == datetime(2026, 12, 8, 0, 0, tzinfo=UTC)


def test_sla_text_round_trips() -> None:
    for text in ("30m", "24h", "48h", "7d", "5bd", "90m"):
        assert sla_text(parse(f"lead:{text}")[0].sla) == text
