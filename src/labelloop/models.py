"""Imports every ORM module so ``Base.metadata`` knows all tables (for Alembic and tests)."""

from labelloop.accounts import models as accounts_models
from labelloop.adjudication import models as adjudication_models
from labelloop.analytics import models as analytics_models
from labelloop.audits import models as audits_models
from labelloop.escalation import models as escalation_models
from labelloop.feedback import anonymous_models as feedback_anonymous_models
from labelloop.feedback import models as feedback_models
from labelloop.guidelines import models as guidelines_models
from labelloop.projects import models as projects_models
from labelloop.trail import models as trail_models
from labelloop.workbench import models as workbench_models

__all__ = [
    "accounts_models",
    "adjudication_models",
    "analytics_models",
    "audits_models",
    "escalation_models",
    "feedback_anonymous_models",
    "feedback_models",
    "guidelines_models",
    "projects_models",
    "trail_models",
    "workbench_models",
]
