"""The guideline document: what `labelloop guidelines import` reads and `export` writes.

Two spellings of one shape (``docs/guidelines.md``, ``docs/examples/guideline.md``):

* **YAML**: ``title``, ``preamble`` and a list of ``rules``, each with ``id``, ``title``,
  ``text`` (Markdown), ``labels`` and ``exemplars`` (``item``: the item's external id,
  ``kind``: positive / negative / boundary, ``label``, ``why``).
* **Markdown**: YAML front matter (``title``, and per rule id its ``labels`` and
  ``exemplars``), then the preamble, then one ``## R1: Title`` heading per rule with
  its text below it.

Parsing never half-succeeds: every problem names the file, the line and the field.
Checks that need the project (labels in the schema, items that exist) are the service's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import yaml
from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labelloop.errors import ImportFailed
from labelloop.identifiers import problem

ExemplarKind = Literal["positive", "negative", "boundary"]
EXEMPLAR_KINDS: tuple[str, ...] = ("positive", "negative", "boundary")

#: A rule's stable id: a letter, then letters, digits, ``.``, ``_`` or ``-`` (``R12``).
RULE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,19}")
#: A published version's number.
VERSION = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")
_HEADING = re.compile(
    r"^(?P<key>[A-Za-z][A-Za-z0-9._-]{0,19})\s*[:.\u2013\u2014-]\s*(?P<title>.+)$"
)

MAX_TEXT = 20_000
MAX_RULES = 500
MAX_EXEMPLARS = 50


def version_order(number: str | None) -> tuple[int, int, str]:
    """Sort key of version numbers (``1.10`` after ``1.9``); anything that is not a
    published number (None, then free text from an import, by text) sorts first."""
    m = VERSION.fullmatch(number or "")
    return (int(m[1]), int(m[2]), "") if m else (-1, -1 if number is None else 0, number or "")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ExemplarDoc(_Model):
    """An item that shows a rule, by the item's external id."""

    item: str = Field(min_length=1, max_length=500)
    kind: ExemplarKind
    label: Any
    why: str = Field("", max_length=2000)

    @field_validator("item", mode="before")
    @classmethod
    def _item_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class RuleDoc(_Model):
    """A rule: stable id, title, Markdown text, the labels it concerns, exemplars."""

    id: str
    title: str = Field(min_length=1, max_length=200)
    text: str = Field("", max_length=MAX_TEXT)
    labels: tuple[str, ...] = ()
    exemplars: tuple[ExemplarDoc, ...] = Field((), max_length=MAX_EXEMPLARS)

    @field_validator("id")
    @classmethod
    def _key(cls, v: str) -> str:
        if not RULE_KEY.fullmatch(v):
            raise ValueError(
                "a rule id is a letter then up to 19 letters, digits, '.', '_' or '-' (R12)"
            )
        if v.lower() == "new":
            raise ValueError("'new' is reserved (the editor's address of a new rule)")
        return v

    @field_validator("title")
    @classmethod
    def _printable(cls, v: str) -> str:
        bad = problem(v) if v else None
        if bad and "whitespace" not in bad:
            raise ValueError(bad)
        return v

    @field_validator("text")
    @classmethod
    def _storable(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("contains NUL (U+0000), which cannot be stored")
        return v


class GuidelineDoc(_Model):
    """A whole guideline: title, preamble (Markdown) and its rules, in order."""

    title: str = Field(min_length=1, max_length=200)
    preamble: str = Field("", max_length=MAX_TEXT)
    rules: tuple[RuleDoc, ...] = Field((), max_length=MAX_RULES)

    @model_validator(mode="after")
    def _unique_ids(self) -> GuidelineDoc:
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(
                    f"rules[{i}].id: rule id {rule.id!r} is also rules[{seen[rule.id]}]"
                )
            seen[rule.id] = i
        return self

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# -- reading ------------------------------------------------------------------------


def parse_document(text: str, *, source: str) -> GuidelineDoc:
    """A guideline from YAML or from Markdown with front matter (by the file's
    extension; otherwise Markdown when it starts with ``---``)."""
    return read_document(text, source=source)[0]


def read_document(text: str, *, source: str) -> tuple[GuidelineDoc, Callable[[str], int | None]]:
    """:func:`parse_document`, and a function giving the line of a field path
    (``rules[0].exemplars[1].item``), for problems found later against the project."""
    if text.startswith("\ufeff"):
        text = text[1:]
    suffix = source.lower().rsplit(".", 1)[-1] if "." in source else ""
    markdown = suffix in ("md", "markdown") or (
        suffix not in ("yaml", "yml") and text.lstrip().startswith("---")
    )
    if markdown:
        data, lines = _from_markdown(text, source=source)
    else:
        node = _compose(text, source=source, offset=0)
        data, lines = _plain(node), _LineMap(node, 0)
    return _validate(data, lines, source=source), lambda field: lines.line(_loc_of(field))


def _compose(text: str, *, source: str, offset: int) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1 + offset}" if mark is not None else ""
        why = getattr(exc, "problem", None) or str(exc)
        raise ImportFailed(
            f"{source}{line}: not valid YAML: {why}", [f"line{line[6:]}: {why}"]
        ) from None


def _plain(node: yaml.Node | None) -> Any:
    return None if node is None else yaml.SafeLoader("").construct_document(node)


class _LineMap:
    """Finds the line of a field path (``rules[2].exemplars[0].item``) in a YAML node."""

    def __init__(
        self,
        node: yaml.Node | None,
        offset: int,
        extra: Mapping[str, int] | None = None,
        rule_keys: Mapping[int, str] | None = None,
    ) -> None:
        self.node, self.offset, self.extra = node, offset, dict(extra or {})
        #: Markdown: rule index -> id, whose labels and exemplars are in the front matter
        self.rule_keys = dict(rule_keys or {})

    def line(self, loc: Sequence[int | str]) -> int | None:
        if (
            len(loc) >= 3
            and loc[0] == "rules"
            and isinstance(loc[1], int)
            and loc[2] not in ("id", "title", "text")
            and loc[1] in self.rule_keys
        ):
            found = self._node_line(["rules", self.rule_keys[loc[1]], *loc[2:]])
            if found is not None:
                return found
        key = _path(loc)
        for prefix in _prefixes(key):
            if prefix in self.extra:
                return self.extra[prefix]
        return self._node_line(loc)

    def _node_line(self, loc: Sequence[int | str]) -> int | None:
        """The line of the deepest node of ``loc`` that exists (None: no node)."""
        node, found = self.node, self.node
        for part in loc:
            node = _child(node, part)
            if node is None:
                break
            found = node
        return None if found is None else found.start_mark.line + 1 + self.offset


def _child(node: yaml.Node | None, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        return node.value[part] if 0 <= part < len(node.value) else None
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == part:
                return v  # type: ignore[no-any-return]
    return None


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _prefixes(key: str) -> list[str]:
    out = [key]
    while "." in key or "[" in key:
        key = key[: max(key.rfind("."), key.rfind("["))]
        out.append(key)
    return out


def _validate(data: Any, lines: _LineMap, *, source: str) -> GuidelineDoc:
    if not isinstance(data, dict):
        raise ImportFailed(
            f"{source}: a guideline is a mapping with `title` and `rules`",
            [f"line 1: expected a mapping, got {type(data).__name__}"],
        )
    try:
        return GuidelineDoc.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = list(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "required field is missing"
            elif err["type"] == "extra_forbidden":
                message = "unknown field"
            where = lines.line(loc)
            field = _path(loc)
            if ": " in message and not field:  # a model-level check names its own field
                field, message = message.split(": ", 1)
                where = lines.line(_loc_of(field))
            issues.append(f"line {where or 1}, {field or 'document'}: {message}")
        n = len(issues)
        raise ImportFailed(
            f"{source}: invalid guideline ({n} problem{'s' if n != 1 else ''})", issues
        ) from None


def _loc_of(field: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", field)]


# -- Markdown -----------------------------------------------------------------------

_MD = MarkdownIt("commonmark")


def _from_markdown(text: str, *, source: str) -> tuple[dict[str, Any], _LineMap]:
    """Front matter + preamble + ``## KEY: Title`` sections, as the YAML shape."""
    lines = text.splitlines()
    front: dict[str, Any] = {}
    node: yaml.Node | None = None
    body_start = 0
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
        if end is None:
            raise ImportFailed(
                f"{source}: the front matter is not closed", ["line 1: no closing ---"]
            )
        node = _compose("\n".join(lines[1:end]), source=source, offset=1)
        raw = _plain(node) or {}
        if not isinstance(raw, dict):
            raise ImportFailed(f"{source}, line 2: front matter must be a mapping", ["line 2"])
        front, body_start = raw, end + 1
    per_rule = front.pop("rules", None) or {}
    if not isinstance(per_rule, dict):
        raise ImportFailed(
            f"{source}: front matter `rules` maps rule ids to labels and exemplars",
            ["front matter rules: expected a mapping of rule id to fields"],
        )
    sections = _sections(lines, body_start)
    data: dict[str, Any] = dict(front)
    data["preamble"] = "\n".join(
        lines[body_start : sections[0][0] if sections else len(lines)]
    ).strip()
    rules, extra = [], {}
    for i, (start, end, key, title) in enumerate(sections):
        meta = per_rule.get(key) or {}
        rule = {"id": key, "title": title, "text": "\n".join(lines[start + 1 : end]).strip()}
        rule |= meta if isinstance(meta, dict) else {"labels": meta}
        rules.append(rule)
        extra[f"rules[{i}]"] = start + 1
    for key in per_rule:
        if key not in {s[2] for s in sections}:
            raise ImportFailed(
                f"{source}: front matter describes rule {key!r}, which has no `## {key}:` section",
                [f"front matter rules.{key}: no such rule heading"],
            )
    data["rules"] = rules
    keys = {i: section[2] for i, section in enumerate(sections)}
    return data, _LineMap(node, 1, extra, keys)


def _sections(lines: list[str], start: int) -> list[tuple[int, int, str, str]]:
    """(heading line, end line, key, title) of each ``## `` heading (never one inside a
    code block, nor an underlined one: markdown-it finds the headings)."""
    tokens = _MD.parse("\n".join(lines[start:]))
    heads = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h2" and tok.markup == "##" and tok.map:
            inline = tokens[i + 1].content.strip()
            m = _HEADING.match(inline)
            key, title = (m["key"], m["title"].strip()) if m else (inline, "")
            heads.append((tok.map[0] + start, key, title))
    if not heads:
        return []
    ends = [h[0] for h in heads[1:]] + [len(lines)]
    return [(h[0], e, h[1], h[2]) for h, e in zip(heads, ends, strict=True)]


# -- writing ------------------------------------------------------------------------


def to_yaml(doc: GuidelineDoc) -> str:
    data = doc.as_json()
    for rule in data["rules"]:
        if not rule["exemplars"]:
            del rule["exemplars"]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def to_markdown(doc: GuidelineDoc) -> str:
    """Markdown with front matter that :func:`parse_document` reads back equal. A text
    with a ``## `` heading of its own would read back as another rule: ValueError (write
    YAML instead)."""
    for where, text in [("preamble", doc.preamble)] + [(f"rule {r.id}", r.text) for r in doc.rules]:
        if _sections(text.splitlines(), 0):
            raise ValueError(
                f"the {where} has a '## ' heading of its own, which Markdown would read "
                "as a rule: export it as YAML"
            )
    front: dict[str, Any] = {"title": doc.title}
    meta = {}
    for rule in doc.rules:
        fields: dict[str, Any] = {}
        if rule.labels:
            fields["labels"] = list(rule.labels)
        if rule.exemplars:
            fields["exemplars"] = [e.model_dump(mode="json") for e in rule.exemplars]
        if fields:
            meta[rule.id] = fields
    if meta:
        front["rules"] = meta
    parts = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100).rstrip(),
        "---",
        "",
    ]
    if doc.preamble:
        parts += [doc.preamble, ""]
    for rule in doc.rules:
        parts += [f"## {rule.id}: {rule.title}", ""]
        if rule.text:
            parts += [rule.text, ""]
    return "\n".join(parts)
