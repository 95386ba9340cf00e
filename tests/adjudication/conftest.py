"""Fixtures for adjudication: a support-ticket project with a published guideline, a
team (lead, adjudicator, auditor, three annotators) and items with chosen votes."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.schemas import parse_document
from labelloop.projects.models import Item, Project
from tests.guidelines._data import EXAMPLE, INTENT


def actor_of(user: User) -> Actor:
    return Actor.for_user(user.id, user.username)


@dataclass
class Court:
    session: Session
    factories: ModuleType
    project: Project
    lead: Actor
    adjudicator: Actor
    auditor: Actor
    annotators: list[User]
    outsider: Actor
    items: dict[str, Item] = field(default_factory=dict)

    def item(self, name: str, *votes: str, **kw: Any) -> Item:
        """An item labelled by the first ``len(votes)`` annotators, in order."""
        item = self.factories.ItemFactory(project=self.project, external_id=name, **kw)
        for user, label in zip(self.annotators, votes, strict=False):
            self.factories.AnnotationFactory(item=item, annotator=user, value=label)
        self.items[name] = item
        return item


@pytest.fixture
def court(factories: ModuleType, session: Session) -> Court:
    project = factories.ProjectFactory(label_schema=INTENT)
    for n in range(1, 21):  # the example guideline's exemplar items
        factories.ItemFactory(project=project, external_id=f"ticket-{n:04d}")
    users = {
        r: factories.UserFactory(username=f"{r}-{project.id}")
        for r in ("lead", "adjudicator", "auditor", "outsider")
    }
    factories.MembershipFactory(user=users["lead"], project=project, lead=True)
    factories.MembershipFactory(user=users["adjudicator"], project=project, role="adjudicator")
    factories.MembershipFactory(user=users["auditor"], project=project, role="auditor")
    annotators = [factories.UserFactory() for _ in range(5)]
    for user in annotators:
        factories.MembershipFactory(user=user, project=project)
    lead = actor_of(users["lead"])
    doc = parse_document(EXAMPLE.read_text(encoding="utf-8"), source=str(EXAMPLE))
    guidelines.save_draft(session, actor=lead, project=project, doc=doc)
    guidelines.publish(session, actor=lead, project=project, note="first")
    return Court(
        session,
        factories,
        project,
        lead,
        actor_of(users["adjudicator"]),
        actor_of(users["auditor"]),
        annotators,
        actor_of(users["outsider"]),
    )
