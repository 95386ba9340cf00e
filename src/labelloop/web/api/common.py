"""What every ``/api/v1`` router shares: the error responses it declares, the project
id parameter, the project a caller may see, the free-form answer model, and the answer
of a write (remembered for ``Idempotency-Key``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from labelloop.identifiers import MAX_ID
from labelloop.web import queries
from labelloop.web.api.schemas import ErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or an invalid credential"},
    403: {"model": ErrorResponse, "description": "The caller's role does not allow it"},
    404: {"model": ErrorResponse, "description": "No such record"},
    422: {
        "model": ErrorResponse,
        "description": "Invalid input, with field paths (a body that is not JSON: "
        "`json_invalid` on `body`)",
    },
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorResponse, "description": "Conflict, or the same key is in flight"},
    413: {"model": ErrorResponse, "description": "The body is larger than the limit"},
}

_ID = "An id (1 to 2^31-1); ids beyond answer 422."
ProjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="The project's id. " + _ID)]


def _created(idem: Any, body: Any, status: int = 201) -> JSONResponse:
    data = body.model_dump(mode="json", by_alias=True)
    idem.remember(status, data)
    return JSONResponse(data, status_code=status)


class Out(BaseModel):
    """A JSON answer whose keys are documented on the operation."""

    model_config = {"extra": "allow"}


def project_of(session: Any, actor: Any, project_id: int) -> Any:
    """The project, for a caller who may see it (404 otherwise)."""
    return queries.visible_project(session, actor=actor, project_id=project_id)
