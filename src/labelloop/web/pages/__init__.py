"""Server-rendered pages (Jinja2 templates, htmx)."""

from fastapi import APIRouter

from labelloop.web.pages import (
    admin,
    audits,
    auth,
    guidelines,
    policies,
    projects,
    queue,
    transfers,
    workbench,
)

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(projects.router)
router.include_router(audits.router)
router.include_router(policies.router)
router.include_router(transfers.router)
router.include_router(workbench.router)
router.include_router(guidelines.router)
router.include_router(queue.router)
router.include_router(admin.router)

__all__ = ["router"]
