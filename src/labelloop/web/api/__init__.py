"""The JSON API, version 1 (mounted at ``/api/v1``; OpenAPI at ``/docs``)."""

from labelloop.web.api import guidelines
from labelloop.web.api.v1 import router

router.include_router(guidelines.router)

__all__ = ["router"]
