"""Fixtures for the analytics tests: factories bound to the SAVEPOINT session."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from sqlalchemy.orm import Session

from tests import factories as _factories


@pytest.fixture
def factories(session: Session) -> Iterator[ModuleType]:
    """The :mod:`tests.factories` module, bound to this test's ``session``."""
    _factories.bind(session)
    try:
        yield _factories
    finally:
        _factories.bind(None)
