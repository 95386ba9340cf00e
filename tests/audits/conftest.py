"""A small simulated project with demo accounts, built through the services."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.demo.builder import build_demo
from labelloop.demo.simulate import DemoData, simulate
from labelloop.projects.models import Project
from labelloop.projects.service import get_project

OPERATOR = Actor.local("test")
SMALL = 400


@dataclass
class Demo:
    session: Session
    project: Project
    data: DemoData


@pytest.fixture(scope="session")
def small_data() -> DemoData:
    return simulate(11, SMALL)


@pytest.fixture
def demo(session: Session, small_data: DemoData) -> Demo:
    summary = build_demo(session, actor=OPERATOR, seed=11, n_items=SMALL)
    return Demo(session, get_project(session, summary.project), small_data)
