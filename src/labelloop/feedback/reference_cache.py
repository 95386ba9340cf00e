"""The project-wide half of "My quality", kept between views.

Every view of :func:`labelloop.feedback.quality.my_quality` needs every annotation of
the project with its reference label: the gold label, else the Dawid–Skene consensus,
which reads all the annotations and fits the model (most of the page's time on a large
project). That half depends on the project's annotations and gold labels only, not on
whose page it is, so it is kept here, per process, and reused while they are unchanged.

**When an entry is reused.** It is stored with a :func:`fingerprint` of the project:
the count and largest id of its annotations and of its gold labels, and its latest
trail event and import (index lookups only). Adding an annotation or a gold label
raises a count and an id; deleting one lowers a count; changing one through any
service, the workbench or the importer appends a trail event. A view whose fingerprint differs from the entry's
recomputes and replaces it, so a project holds one entry at most. The key also names
the database (its URL), so two databases served by one process never share entries.

**Bounds.** At most :data:`MAX_ENTRIES` projects and :data:`MAX_BYTES` of arrays
(about 41 bytes per annotation: 1,000,000 annotations take ~39 MiB); the least
recently used entries go first, and a project too large for the byte budget alone is
not kept. Each server process has its own cache; the arrays are read-only, shared by
the threads that read them, and a lock guards the table (two threads that miss at once
both compute, and the later one's entry stays).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.projects.models import Annotation, GoldLabel, ImportBatch, Project
from labelloop.trail.models import Event

#: Projects kept at most.
MAX_ENTRIES = 16
#: Bytes of arrays kept at most, all projects together.
MAX_BYTES = 256 * 2**20

Fingerprint = tuple[Any, ...]
_Key = tuple[str, int]


@dataclass(frozen=True)
class ProjectReference:
    """Per annotation of the project (in one order): its annotator, its label and its
    item's reference label (codes into ``categories``; ``len(categories)`` for a gold
    label no annotation uses), whether that reference is a gold label, and its submit
    time in epoch seconds (NaN without one)."""

    annotator: npt.NDArray[np.int64]
    label: npt.NDArray[np.int64]
    ref: npt.NDArray[np.int64]
    is_gold: npt.NDArray[np.bool_]
    submitted: npt.NDArray[np.float64]
    categories: tuple[str, ...]

    def __post_init__(self) -> None:
        for array in (self.annotator, self.label, self.ref, self.is_gold, self.submitted):
            array.flags.writeable = False  # shared between threads

    @property
    def nbytes(self) -> int:
        arrays = (self.annotator, self.label, self.ref, self.is_gold, self.submitted)
        return sum(int(a.nbytes) for a in arrays)


def fingerprint(session: Session, project: Project) -> Fingerprint:
    """(count, largest id) of the project's annotations, then of its gold labels, then
    the project's latest trail event and import: every change made through the services
    (a label changed, an import) appends a trail event in its own transaction, and
    adding or deleting a row moves a count. All index lookups, no scan of the rows."""
    out: list[Any] = []
    for model in (Annotation, GoldLabel):
        row = session.execute(
            select(func.count(model.id), func.max(model.id)).where(model.project_id == project.id)
        ).one()
        out.extend(row)
    out.append(session.scalar(select(func.max(Event.seq)).where(Event.project_id == project.id)))
    out.append(
        session.scalar(select(func.max(ImportBatch.id)).where(ImportBatch.project_id == project.id))
    )
    return tuple(out)


class ReferenceCache:
    """A bounded, thread-safe table of :class:`ProjectReference` by (database, project),
    each with the fingerprint it was computed at (see the module docstring)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[_Key, tuple[Fingerprint, ProjectReference]] = OrderedDict()

    def get(self, key: _Key, print_: Fingerprint) -> ProjectReference | None:
        """The entry of ``key`` if it was computed at ``print_``."""
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != print_:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: _Key, print_: Fingerprint, value: ProjectReference) -> None:
        """Keep ``value`` (unless it alone exceeds the byte budget), then drop the least
        recently used entries past the bounds."""
        with self._lock:
            if value.nbytes > self.max_bytes:
                self._entries.pop(key, None)
                return
            self._entries[key] = (print_, value)
            self._entries.move_to_end(key)
            while self._entries and (
                len(self._entries) > self.max_entries or self._bytes() > self.max_bytes
            ):
                self._entries.popitem(last=False)

    def _bytes(self) -> int:
        return sum(value.nbytes for _, value in self._entries.values())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def cached(
        self,
        session: Session,
        project: Project,
        compute: Callable[[Session, Project], ProjectReference],
    ) -> ProjectReference:
        """The project's entry when its fingerprint is unchanged, else ``compute`` it
        (outside the lock) and keep it."""
        key = (session.get_bind().engine.url.render_as_string(hide_password=True), project.id)
        print_ = fingerprint(session, project)  # before the data: never newer than it
        found = self.get(key, print_)
        if found is not None:
            return found
        value = compute(session, project)
        self.put(key, print_, value)
        return value


#: The process's cache (the web server's threads share it).
CACHE = ReferenceCache()
