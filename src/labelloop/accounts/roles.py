"""Roles of DESIGN.md and what each may do. Deny by default."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    LEAD = "lead"
    ADJUDICATOR = "adjudicator"
    AUDITOR = "auditor"
    MENTOR = "mentor"
    ANNOTATOR = "annotator"
    MODEL = "model"


class Permission(StrEnum):
    PROJECT_READ = "project.read"
    PROJECT_MANAGE = "project.manage"  # schema, settings, memberships
    DATA_IMPORT = "data.import"
    DATA_EXPORT = "data.export"
    ANNOTATE = "annotate"
    GOLD_WRITE = "gold.write"
    PREDICTION_WRITE = "prediction.write"
    AUDIT_MANAGE = "audit.manage"
    AUDIT_REVIEW = "audit.review"
    ADJUDICATE = "adjudicate"
    GUIDELINE_EDIT = "guideline.edit"  # edit the draft, publish versions
    FEEDBACK_SEND = "feedback.send"  # write, review and send feedback notes


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.LEAD: frozenset(Permission),
    Role.ADJUDICATOR: frozenset(
        {
            Permission.PROJECT_READ,
            Permission.ADJUDICATE,
            Permission.GOLD_WRITE,
            Permission.AUDIT_REVIEW,
        }
    ),
    Role.AUDITOR: frozenset({Permission.PROJECT_READ, Permission.AUDIT_REVIEW}),
    Role.MENTOR: frozenset({Permission.PROJECT_READ, Permission.ANNOTATE, Permission.AUDIT_REVIEW}),
    Role.ANNOTATOR: frozenset({Permission.PROJECT_READ, Permission.ANNOTATE}),
    Role.MODEL: frozenset(
        {Permission.PROJECT_READ, Permission.PREDICTION_WRITE, Permission.DATA_EXPORT}
    ),
}


def allows(roles: set[Role] | frozenset[Role], permission: Permission) -> bool:
    return any(permission in GRANTS[role] for role in roles)
