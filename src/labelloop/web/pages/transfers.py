"""Lead pages for bulk data: imports by upload (with the error list) and exports.

An upload is streamed to a temporary file named like the uploaded one (the format is
detected from its name and content) and handed to the same import service as
``labelloop import``: all or nothing, idempotent on re-upload. An export is written by
the export service to a temporary file and sent as an attachment
(:func:`export_response`, shared with the JSON API).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.errors import ImportFailed, ValidationFailed
from labelloop.projects import service as projects
from labelloop.projects.exporter import EXPORT_FORMATS, export_project
from labelloop.projects.importer import MAX_ISSUES, import_file
from labelloop.projects.models import Project
from labelloop.web import queries
from labelloop.web.deps import (
    CurrentActor,
    CurrentUser,
    PathId,
    SessionDep,
    TransactionRoute,
    before_body,
)
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

IMPORT_FORMATS = ("auto", "label-studio", "cvat", "prodigy", "doccano", "csv", "jsonl", "parquet")
_CHUNK = 1 << 20

#: Export format -> (file extension, content type).
EXPORT_TYPES: dict[str, tuple[str, str]] = {
    "csv": ("csv", "text/csv; charset=utf-8"),
    "jsonl": ("jsonl", "application/x-ndjson"),
    "parquet": ("parquet", "application/vnd.apache.parquet"),
    "label-studio": ("json", "application/json"),
}
ExportFormatParam = Literal["csv", "jsonl", "parquet", "label-studio"]
#: The ``raw`` query parameter of the export downloads (page and API).
RAW_DESCRIPTION = (
    "CSV only: write cells exactly as stored. By default a text cell starting with "
    "= + - @ tab or CR gets a leading ' so spreadsheets do not run it as a formula "
    "(labelloop import removes it again)."
)

#: Column-mapping fields of the upload form -> TabularOptions arguments.
COLUMN_FIELDS = {
    "item_col": "item",
    "annotator_col": "annotator",
    "label_col": "label",
    "text_col": "text",
    "gold_col": "gold",
}


class UploadTooLarge(Exception):
    pass


def _safe_name(filename: str | None) -> str:
    """The uploaded file's base name, reduced to harmless characters."""
    name = Path((filename or "").replace("\\", "/")).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name[:200] or "upload"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "project"


# ---------------------------------------------------------------------------- imports
def _import_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    ctx: dict[str, Any] = {
        "project": project,
        "formats": IMPORT_FORMATS,
        "batches": projects.import_batches(session, actor=actor, project=project),
        "max_mb": _upload_limit(request) // (1024 * 1024),
        "column_fields": COLUMN_FIELDS,
        "values": {},
        "summary": None,
        "problems": [],
        "total": 0,
        "message": None,
    }
    ctx.update(extra)
    return render(request, "imports.html", ctx, status_code=status_code)


def _problem_rows(exc: ImportFailed | ValidationFailed, tmp: str) -> list[dict[str, Any]]:
    """One row per problem: file, line, record, field, reason (without the server's
    temporary directory)."""

    def clean(text: str) -> str:
        return text.replace(tmp + "/", "").replace(tmp, "")

    rows = []
    found = exc.issues if isinstance(exc, ImportFailed) else exc.violations
    for issue in found[:MAX_ISSUES]:
        loc = getattr(issue, "location", None)
        if loc is not None:
            rows.append(
                {
                    "file": Path(loc.file).name,
                    "line": loc.line,
                    "record": loc.record,
                    "field": loc.field,
                    "reason": clean(issue.reason),
                }
            )
        elif hasattr(issue, "field") and hasattr(issue, "message"):
            rows.append({"field": issue.field, "reason": clean(issue.message)})
        else:
            rows.append({"reason": clean(str(issue))})
    return rows


def _upload_limit(request: Request) -> int:
    """The largest file accepted (``Settings.max_upload_bytes``); the body as a whole is
    also counted as it arrives (:mod:`labelloop.web.limits`)."""
    return int(request.app.state.settings.max_upload_bytes)


def _store_upload(upload: UploadFile, target: Path, limit: int) -> int:
    """Copy the upload to ``target`` in chunks; refuses more than ``limit`` bytes."""
    size = 0
    upload.file.seek(0)
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge
            out.write(chunk)
    return size


@router.get("/projects/{project_id}/imports")
def imports_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.DATA_IMPORT
    )
    return _import_page(request, session, actor, project)


def _may_import(session: Session, actor: Actor, params: dict[str, Any]) -> None:
    """Checked before an upload's body is read: only callers who may import into the
    project get to send one (anyone else is refused before a byte is stored)."""
    queries.project_for(
        session, actor=actor, project_id=params["project_id"], permission=Permission.DATA_IMPORT
    )


@router.post("/projects/{project_id}/imports")
@before_body(_may_import)
def upload_import(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    file: Annotated[UploadFile | None, File()] = None,
    format: Annotated[str, Form(max_length=20)] = "auto",
    item_col: Annotated[str, Form(max_length=200)] = "",
    annotator_col: Annotated[str, Form(max_length=200)] = "",
    label_col: Annotated[str, Form(max_length=200)] = "",
    text_col: Annotated[str, Form(max_length=200)] = "",
    gold_col: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Import an uploaded file; the counts on success, the problem list (422) else."""
    project = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.DATA_IMPORT
    )
    given = {
        "item_col": item_col,
        "annotator_col": annotator_col,
        "label_col": label_col,
        "text_col": text_col,
        "gold_col": gold_col,
    }
    values = {"format": format, **given}

    def refused(message: str, status: int = 422, **extra: Any) -> Response:
        return _import_page(
            request,
            session,
            actor,
            project,
            status_code=status,
            values=values,
            message=message,
            **extra,
        )

    if file is None or not file.filename:
        return refused("choose a file to upload")
    if format not in IMPORT_FORMATS:
        return refused(f"format: {format!r} is not one of {', '.join(IMPORT_FORMATS)}")
    limit = _upload_limit(request)
    too_large = (
        f"{file.filename}: the file is larger than the upload limit of "
        f"{limit // (1024 * 1024)} MB; import it with `labelloop import` instead"
    )
    mapping: dict[str, Any] = {COLUMN_FIELDS[k]: v.strip() for k, v in given.items() if v.strip()}
    options = None
    if mapping:
        from labelloop.formats import TabularOptions

        options = TabularOptions(**mapping)
    with tempfile.TemporaryDirectory(prefix="labelloop-upload-") as tmp:
        path = Path(tmp) / _safe_name(file.filename)
        try:
            _store_upload(file, path, limit)
        except UploadTooLarge:
            return refused(too_large, 413)
        try:
            summary = import_file(
                session,
                actor=actor,
                path=path,
                project=str(project.id),
                format=format,
                options=options,
            )
        except (ImportFailed, ValidationFailed) as exc:
            session.rollback()
            total = exc.total if isinstance(exc, ImportFailed) else len(exc.violations)
            return refused(
                str(exc).replace(tmp + "/", ""),
                problems=_problem_rows(exc, tmp),
                total=max(total, 1),
            )
    return _import_page(request, session, actor, project, values=values, summary=summary)


# ---------------------------------------------------------------------------- exports
def export_response(
    session: Session, *, actor: Actor, project: Project, format: str, raw: bool = False
) -> FileResponse:
    """Write the export to a temporary file and answer it as an attachment named
    ``<project>-<UTC time>.<ext>``; the file is removed once sent. CSV cells that a
    spreadsheet would run as formulas are escaped unless ``raw`` (the ``raw`` query
    parameter of the page and API routes)."""
    from labelloop.store.base import utcnow

    ext, media_type = EXPORT_TYPES.get(format, ("bin", "application/octet-stream"))
    name = f"{_slug(project.name)}-{utcnow():%Y%m%d-%H%M%S}.{ext}"
    tmp = Path(tempfile.mkdtemp(prefix="labelloop-export-"))
    try:
        export_project(
            session, actor=actor, project=project, format=format, path=tmp / name, raw=raw
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        tmp / name,
        media_type=media_type,
        filename=name,
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


@router.get("/projects/{project_id}/exports")
def exports_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.DATA_EXPORT
    )
    counts = projects.project_summary(session, project)
    return render(
        request,
        "exports.html",
        {"project": project, "formats": EXPORT_FORMATS, "counts": counts},
    )


@router.get("/projects/{project_id}/exports/download")
def export_download(
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    format: Annotated[ExportFormatParam, Query()] = "csv",
    raw: Annotated[bool, Query(description=RAW_DESCRIPTION)] = False,
) -> FileResponse:
    project = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.DATA_EXPORT
    )
    return export_response(session, actor=actor, project=project, format=format, raw=raw)
