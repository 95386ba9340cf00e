"""Server-rendered pages (Jinja2 templates, htmx)."""

from fastapi import APIRouter

from labelloop.web.pages import (
    admin,
    amendments,
    anonymous,
    audits,
    auth,
    cases,
    feedback,
    guidelines,
    inbox,
    overdue,
    policies,
    projects,
    quality,
    queue,
    rulings,
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
router.include_router(cases.router)
router.include_router(rulings.router)
router.include_router(inbox.router)
router.include_router(amendments.router)
router.include_router(anonymous.router)
router.include_router(feedback.router)
router.include_router(quality.router)
router.include_router(overdue.router)

__all__ = ["router"]
