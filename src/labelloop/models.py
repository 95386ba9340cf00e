"""Imports every ORM module so ``Base.metadata`` knows all tables (for Alembic and tests)."""

from labelloop.accounts import models as accounts_models
from labelloop.audits import models as audits_models
from labelloop.projects import models as projects_models
from labelloop.trail import models as trail_models

__all__ = ["accounts_models", "audits_models", "projects_models", "trail_models"]
