"""The JSON API, version 1 (mounted at ``/api/v1``; OpenAPI at ``/docs``)."""

from labelloop.web.api import adjudication, escalation, feedback, guidelines
from labelloop.web.api.v1 import router

router.include_router(guidelines.router)
router.include_router(adjudication.router)
router.include_router(feedback.router)
router.include_router(escalation.router)

__all__ = ["router"]
