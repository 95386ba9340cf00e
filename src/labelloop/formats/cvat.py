"""CVAT for images 1.1 XML reader (streaming, defusedxml-safe, with line numbers).

The file is parsed in chunks by ``defusedxml``'s expat parser (entities and external
references are refused); each ``<image>`` is built, turned into records and dropped, so
memory stays flat. A first pass decides the task type and refuses CVAT for video
(``<track>``) files. See ``docs/formats.md`` for the mapping and the decisions.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from labelloop.formats._common import READ_CHUNK, empty_file_issue, is_empty_file, iter_lines
from labelloop.formats.records import (
    AnnotationRecord,
    FormatIssue,
    ItemRecord,
    Location,
    Record,
    SchemaHints,
    SkippedRecord,
    TaskType,
)

SHAPES = frozenset({"box", "polygon", "polyline", "points", "ellipse"})
UNSUPPORTED_SHAPES = frozenset({"cuboid", "skeleton", "mask"})
_DECLARED = re.compile(rb"\s*<\?xml[^>]*?encoding=[\"']([A-Za-z0-9._-]+)")
EMPTY_LABEL = "shape with an empty label"
VIDEO_REFUSAL = (
    "CVAT for video 1.1 tracks are not supported: export the task as 'CVAT for images 1.1' "
    "(CVAT then writes every tracked frame as shapes on per-frame <image> elements) and import that file"
)


class _Target:
    """An ElementTree builder that records line numbers and hands over each finished
    child of the root (``<meta>``, ``<image>``, ``<track>``...)."""

    def __init__(self) -> None:
        self.builder = ET.TreeBuilder()
        self.parser: Any = None
        self.depth = 0
        self.root: ET.Element | None = None
        self.lines: dict[int, int] = {}
        self.done: list[tuple[ET.Element, int]] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        element = self.builder.start(tag, attrib)
        self.depth += 1
        if self.depth == 1:
            self.root = element
            self.lines[id(element)] = self.parser.CurrentLineNumber
        elif self.depth <= 3:
            self.lines[id(element)] = self.parser.CurrentLineNumber

    def end(self, tag: str) -> None:
        element = self.builder.end(tag)
        self.depth -= 1
        if self.depth == 1 and self.root is not None:
            self.done.append((element, self.lines.pop(id(element), 0)))

    def data(self, text: str) -> None:
        self.builder.data(text)

    def close(self) -> None:
        return None


def _elements(path: Path) -> Iterator[tuple[ET.Element, int, dict[int, int]] | FormatIssue]:
    """Top-level children of ``<annotations>`` with their start lines, streamed; a parse
    error yields one fatal issue."""
    file = str(path)
    target = _Target()
    parser = DefusedXMLParser(target=target)
    target.parser = parser.parser
    try:
        with path.open("rb") as fh:
            while True:
                chunk = fh.read(READ_CHUNK)
                if not chunk:
                    break
                parser.feed(chunk)
                if target.root is not None and target.root.tag != "annotations":
                    yield FormatIssue(
                        Location(file, line=1),
                        f"root element is <{target.root.tag}>, not <annotations>: not a CVAT XML file",
                    )
                    return
                for element, line in target.done:
                    yield element, line, target.lines
                    if target.root is not None:
                        target.root.remove(element)
                    for child in element:  # forget line numbers of dropped elements
                        target.lines.pop(id(child), None)
                target.done.clear()
        parser.close()
        for element, line in target.done:
            yield element, line, target.lines
    except ET.ParseError as exc:
        line, column = exc.position
        encoding = _encoding_issue(path, line)
        if encoding is not None:
            yield encoding
            return
        yield FormatIssue(
            Location(file, line=line),
            f"invalid XML: {_reason(exc)} (line {line}, column {column + 1})",
        )
    except DefusedXmlException as exc:
        yield FormatIssue(Location(file), f"refused unsafe XML: {exc}")


def _encoding_issue(path: Path, error_line: int) -> FormatIssue | None:
    """The not-UTF-8 issue when a parse error comes from undecodable bytes (files that
    declare another encoding in their XML declaration are left to expat)."""
    with path.open("rb") as fh:
        declared = _DECLARED.match(fh.read(200))
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return None
    for entry in iter_lines(path):
        if isinstance(entry, FormatIssue):
            return entry if (entry.location.line or 0) <= error_line else None
        if entry[0] > error_line:
            return None
    return None


def _reason(exc: ET.ParseError) -> str:
    text = str(exc)
    return text.split(":", 1)[0] if ": line" in text else text


@dataclass(slots=True)
class _Meta:
    """Who annotated what, from ``<meta>``: per task id, and for the file as a whole."""

    default: str | None = None
    task_id: str | None = None
    job_id: str | None = None
    by_task: dict[str, str | None] = field(default_factory=dict)


def _person(element: ET.Element | None) -> str | None:
    """``<owner>``/``<assignee>``: email when present, else username, else the text."""
    if element is None:
        return None
    for key in ("email", "username"):
        text = (element.findtext(key) or "").strip()
        if text:
            return text
    text = (element.text or "").strip()
    return text or None


def _who(container: ET.Element) -> str | None:
    return _person(container.find("assignee")) or _person(container.find("owner"))


def _meta(element: ET.Element) -> _Meta:
    meta = _Meta()
    for kind in ("task", "job", "project"):
        node = element.find(kind)
        if node is None:
            continue
        meta.default = _who(node)
        ident = (node.findtext("id") or "").strip() or None
        if kind == "task":
            meta.task_id = ident
        elif kind == "job":
            meta.job_id = ident
        for task in node.iter("task"):
            task_id = (task.findtext("id") or "").strip()
            if task_id:
                meta.by_task[task_id] = _who(task) or meta.default
    return meta


@dataclass(slots=True)
class _Scan:
    track_line: int | None = None
    shapes: bool = False
    multi: bool = False
    fatal: FormatIssue | None = None


def _scan(path: Path) -> _Scan:
    scan = _Scan()
    for entry in _elements(path):
        if isinstance(entry, FormatIssue):
            scan.fatal = entry
            return scan
        element, line, _ = entry
        if element.tag == "track":
            scan.track_line = line
            return scan
        if element.tag == "image":
            tags = 0
            for child in element:
                if child.tag in SHAPES:
                    scan.shapes = True
                elif child.tag == "tag":
                    tags += 1
            scan.multi = scan.multi or tags > 1
    return scan


def _floats(text: str) -> list[float]:
    out: list[float] = []
    for pair in text.split(";"):
        if not pair.strip():
            continue
        x, y = pair.split(",")
        out.extend((float(x), float(y)))
    return out


def _attributes(element: ET.Element, hints: SchemaHints) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for attribute in element.findall("attribute"):
        name = attribute.get("name")
        if name:
            value = attribute.text or ""
            attributes[name] = value
            hints.see_attribute(name, value)
    return attributes


def _region(element: ET.Element) -> dict[str, Any]:
    """A shape element -> canonical geometry region (raises ValueError)."""
    a = element.attrib
    if element.tag == "box":
        points = [float(a["xtl"]), float(a["ytl"]), float(a["xbr"]), float(a["ybr"])]
    elif element.tag == "ellipse":
        points = [float(a["cx"]), float(a["cy"]), float(a["rx"]), float(a["ry"])]
    else:
        points = _floats(a["points"])
    region: dict[str, Any] = {
        "label": a["label"],
        "shape": element.tag,
        "points": points,
        "frame": 0,
    }
    if a.get("occluded") == "1":
        region["occluded"] = True
    if a.get("z_order") not in (None, "", "0"):
        region["z_order"] = int(a["z_order"])
    if a.get("rotation") not in (None, "", "0", "0.0"):
        region["rotation"] = float(a["rotation"])
    return region


def read_cvat(path: Path, hints: SchemaHints | None = None) -> Iterator[Record | FormatIssue]:
    """Read a CVAT for images 1.1 XML export (task, job or project)."""
    hints = hints if hints is not None else SchemaHints()
    file = str(path)
    if is_empty_file(path):
        yield empty_file_issue(path)
        return
    scan = _scan(path)
    if scan.fatal is not None:
        yield scan.fatal
        return
    if scan.track_line is not None:
        yield FormatIssue(Location(file, line=scan.track_line, field="track"), VIDEO_REFUSAL)
        return
    task_type: TaskType = (
        "spans"
        if scan.shapes
        else ("multi" if scan.multi or hints.task_type == "multi" else "single")
    )
    meta = _Meta()
    seen: dict[str, int] = {}
    record = -1
    for entry in _elements(path):
        if isinstance(entry, FormatIssue):
            yield entry
            return
        element, line, lines = entry
        if element.tag == "meta":
            meta = _meta(element)
            continue
        if element.tag != "image":
            continue
        record += 1
        loc = Location(file, line=line, record=record)
        image_id = element.get("id")
        if image_id is None:
            yield FormatIssue(
                Location(file, line, record, "image.id"), "<image> without an id attribute"
            )
            continue
        task_id = element.get("task_id") or meta.task_id
        subset = element.get("subset")
        parts = [
            f"task-{task_id}" if task_id else (f"job-{meta.job_id}" if meta.job_id else None),
            subset,
            image_id,
        ]
        item_id = "/".join(p for p in parts if p)
        if item_id in seen:
            yield FormatIssue(
                Location(file, line, record, "image.id"),
                f"duplicate image {item_id!r}: also at line {seen[item_id]}",
            )
            continue
        seen[item_id] = line
        payload: dict[str, Any] = {"name": element.get("name", "")}
        for key in ("width", "height"):
            if element.get(key) is not None:
                try:
                    payload[key] = int(float(element.get(key, "")))
                except ValueError:
                    payload[key] = element.get(key)
        metadata = {"cvat_image_id": image_id}
        if task_id:
            metadata["cvat_task_id"] = task_id
        yield ItemRecord(
            item_id, payload, metadata, {"subset": subset} if subset else {}, location=loc
        )

        annotator = meta.by_task.get(task_id, meta.default) if task_id else meta.default
        regions: list[dict[str, Any]] = []
        tags: list[str] = []
        problems = False
        for index, child in enumerate(element):
            child_line = lines.pop(id(child), line)
            where = Location(file, child_line, record, f"image.{child.tag}[{index}]")
            if child.tag == "attribute":
                continue
            label = child.get("label")
            if child.tag in UNSUPPORTED_SHAPES:
                yield SkippedRecord(f"unsupported CVAT shape <{child.tag}>", where)
                continue
            if child.tag not in SHAPES and child.tag != "tag":
                yield SkippedRecord(f"unknown CVAT element <{child.tag}>", where)
                continue
            if label is None or not label.strip():
                yield SkippedRecord(EMPTY_LABEL, where)
                continue
            attributes = _attributes(child, hints)
            if child.tag == "tag":
                tags.append(label)
                hints.see_label(label)
                continue
            try:
                region = _region(child)
            except (KeyError, ValueError) as exc:
                yield FormatIssue(
                    where, f"<{child.tag}> has missing or non-numeric coordinates ({exc})"
                )
                problems = True
                continue
            if attributes:
                region["attributes"] = attributes
            hints.see_label(label)
            regions.append(region)
        lines.pop(id(element), None)
        if problems or (not regions and not tags):
            continue
        if hints.task_type is None:
            hints.task_type = task_type
        value: Any
        extra: dict[str, Any] = {}
        if task_type == "spans":
            if not regions:
                yield SkippedRecord("image with tags only in a file of shapes", loc)
                continue
            value = sorted(regions, key=lambda r: (r["frame"], r["points"], r["label"], r["shape"]))
            if tags:
                extra["tags"] = sorted(set(tags))
        elif task_type == "multi":
            value = sorted(set(tags))
        elif len(set(tags)) > 1:
            yield FormatIssue(loc, f"{len(tags)} tags on one image in a single-label file")
            continue
        else:
            value = tags[0]
        yield AnnotationRecord(
            item_external_id=item_id,
            annotator=annotator,
            value=value,
            task_type=task_type,
            attributes=extra,
            external_id=f"cvat:{item_id}",
            location=loc,
        )
