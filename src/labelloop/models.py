"""Imports every ORM module so ``Base.metadata`` knows all tables (for Alembic and tests)."""

from labelloop.accounts import models as accounts_models
from labelloop.analytics import models as analytics_models
from labelloop.audits import models as audits_models
from labelloop.guidelines import models as guidelines_models
from labelloop.projects import models as projects_models
from labelloop.trail import models as trail_models
from labelloop.workbench import models as workbench_models

__all__ = [
    "accounts_models",
    "analytics_models",
    "audits_models",
    "guidelines_models",
    "projects_models",
    "trail_models",
    "workbench_models",
]
