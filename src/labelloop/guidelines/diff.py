"""What changed between two guideline versions, rule by rule.

Rules are matched by their stable id: an id only in the newer version is *added*, only
in the older *removed*; a rule whose title, text, labels or exemplars differ is
*changed*, with a unified diff of its text. The document's title and preamble are
compared too. JSON keys: ``from``, ``to``, ``added``, ``removed``, ``changed``, and
``title`` (``{"from", "to"}`` when it changed, else null) and ``preamble_diff`` (a
unified diff, empty when unchanged).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from labelloop.guidelines.schemas import GuidelineDoc, RuleDoc

FIELDS = ("title", "text", "labels", "exemplars")


@dataclass(frozen=True)
class RuleChange:
    id: str
    title: str
    fields: tuple[str, ...]
    text_diff: str
    labels: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "fields": list(self.fields),
            "text_diff": self.text_diff,
            "labels": list(self.labels),
        }


@dataclass(frozen=True)
class GuidelineDiff:
    old: str | None
    new: str | None
    added: tuple[RuleDoc, ...]
    removed: tuple[RuleDoc, ...]
    changed: tuple[RuleChange, ...]
    title: tuple[str, str] | None = None
    preamble_diff: str = ""

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.title or self.preamble_diff)

    def labels(self) -> set[str]:
        """Every label a changed, added or removed rule concerns."""
        out: set[str] = set()
        for rule in (*self.added, *self.removed):
            out.update(rule.labels)
        for change in self.changed:
            out.update(change.labels)
        return out

    def as_json(self) -> dict[str, Any]:
        def brief(r: RuleDoc) -> dict[str, Any]:
            return {"id": r.id, "title": r.title, "labels": list(r.labels)}

        return {
            "from": self.old,
            "to": self.new,
            "added": [brief(r) for r in self.added],
            "removed": [brief(r) for r in self.removed],
            "changed": [c.as_json() for c in self.changed],
            "title": None if self.title is None else {"from": self.title[0], "to": self.title[1]},
            "preamble_diff": self.preamble_diff,
        }


def _text_diff(a: str, b: str, old: str | None, new: str | None) -> str:
    lines = difflib.unified_diff(
        a.splitlines(), b.splitlines(), fromfile=old or "none", tofile=new or "none", lineterm=""
    )
    return "\n".join(lines)


def diff_documents(
    a: GuidelineDoc, b: GuidelineDoc, *, old: str | None, new: str | None
) -> GuidelineDiff:
    before = {r.id: r for r in a.rules}
    after = {r.id: r for r in b.rules}
    changed = []
    for rule in b.rules:
        prior = before.get(rule.id)
        if prior is None:
            continue
        fields = tuple(f for f in FIELDS if getattr(prior, f) != getattr(rule, f))
        if fields:
            changed.append(
                RuleChange(
                    id=rule.id,
                    title=rule.title,
                    fields=fields,
                    text_diff=_text_diff(prior.text, rule.text, old, new)
                    if "text" in fields
                    else "",
                    labels=tuple(sorted(set(prior.labels) | set(rule.labels))),
                )
            )
    return GuidelineDiff(
        old=old,
        new=new,
        added=tuple(r for r in b.rules if r.id not in before),
        removed=tuple(r for r in a.rules if r.id not in after),
        changed=tuple(changed),
        title=None if a.title == b.title or old is None else (a.title, b.title),
        preamble_diff=""
        if a.preamble == b.preamble or old is None
        else _text_diff(a.preamble, b.preamble, old, new),
    )
