"""Fixtures for guidelines: a support-ticket project with the example guideline's items."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import pytest

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.guidelines.schemas import GuidelineDoc, parse_document
from labelloop.projects.models import Project
from tests.guidelines._data import EXAMPLE, INTENT


@dataclass
class Tickets:
    project: Project
    lead: Actor
    annotator: Actor
    annotator_user: User
    outsider: Actor
    doc: GuidelineDoc


def actor_of(user: User) -> Actor:
    return Actor.for_user(user.id, user.username)


@pytest.fixture
def tickets(factories: ModuleType) -> Tickets:
    project = factories.ProjectFactory(label_schema=INTENT)
    for n in range(1, 21):
        factories.ItemFactory(project=project, external_id=f"ticket-{n:04d}")
    lead, annotator = factories.UserFactory(), factories.UserFactory()
    factories.MembershipFactory(user=lead, project=project, lead=True)
    factories.MembershipFactory(user=annotator, project=project)
    outsider = factories.UserFactory()
    doc = parse_document(EXAMPLE.read_text(encoding="utf-8"), source=str(EXAMPLE))
    return Tickets(project, actor_of(lead), actor_of(annotator), annotator, actor_of(outsider), doc)
