"""The JSON API against its own OpenAPI contract, with schemathesis.

Schemathesis's engine (what ``st run --checks all`` runs) drives the app in-process over
ASGI, authenticated as the demo project's lead, through every phase: the schema's
examples, coverage (boundary values, missing and unexpected parameters, undeclared
methods), fuzzing, and stateful sequences along the OpenAPI links (a created item's id
feeds the annotation, gold and prediction writes and the skip; a policy's id its reads,
patch and runs; a run's id its report and close), so requests reach real items,
annotations, policies and runs, not only 404s. Every check is on, and the run must
find nothing.

Generation is seeded and deterministic (``generation.deterministic``: Hypothesis's
``derandomize``) with :data:`EXAMPLES` examples per operation; each backend gets its own
copy of the demo database (the run writes items, policies, runs and closes runs, which
the shared demo of the other web tests must not see).

Two adjustments, each with its reason:

* :func:`realistic_labels` (a ``flatmap_body`` hook) offers, beside every generated
  annotation, gold and prediction body, one whose label is one of the project's labels
  (and whose annotator is the lead). The OpenAPI document cannot list a project's labels
  (each project defines its own, read from ``GET /projects/{id}``), so random values
  almost never pass the label schema; without these, the writes would never succeed
  and their answers never be checked.
* :func:`stated_rules` (a ``filter_failure`` hook) drops one kind of failure only:
  ``positive_data_acceptance`` (ST202) for a 422 whose every problem is one of
  :data:`STATED_RULES`: rules that depend on the data (the project's label schema, its
  members, its reviewers, what an audit window holds, an idempotency key used before)
  or that JSON Schema cannot express (an external id repeated within a batch, a cron
  expression that names no real date), which the OpenAPI document states in words.
  Any other rejection of schema-valid input still fails.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from pydantic import ConfigDict, TypeAdapter
from schemathesis.engine import events, from_schema
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.python import asgi
from sqlalchemy import select, update

from labelloop.projects.models import Annotation
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.web import create_app
from labelloop.web.api import schemas
from tests.conftest import _copy_database, _Postgres
from tests.web.conftest import (
    ROLE_USERS,
    Demo,
    _build,
    bearer,
    make_settings,
    make_token,
    user_id,
)

SEED = 20_250_611
#: Examples per operation in the fuzzing phase (the coverage phase adds its own: every
#: boundary and negation the schema has, some 1,500 requests).
EXAMPLES = 10
#: Scenarios of the stateful phase (each up to 6 linked calls).
SCENARIOS = 30
PREFIX = "/api/v1"
#: The policy the OpenAPI examples of ``{policy}`` name.
EXAMPLE_POLICY = {
    "name": "weekly-quality",
    "spec": {"cadence": "0 6 * * MON", "strata": ["annotator"], "sample_size": 20},
}

#: (operation or "*", detail field regex or None, message regex): a 422 whose every
#: problem matches one of these is the API's documented answer to data it cannot know
#: from the schema alone (see the module docstring).
STATED_RULES: list[tuple[str, str | None, str]] = [
    # the project's label schema decides which labels, attributes and probabilities are valid
    ("POST /projects/{project_id}/annotations", r"(value|attributes)(\..*)?", ".*"),
    ("POST /projects/{project_id}/gold", r"value(\..*)?", ".*"),
    ("POST /projects/{project_id}/predictions", r"(value|probabilities)(\..*)?", ".*"),
    # a lead records annotations for members of the project who may annotate
    ("POST /projects/{project_id}/annotations", r"annotator_id", "grant the user a role"),
    # reviewers are users with a reviewing role in the project
    ("POST /projects/{project_id}/audit-policies", None, r"reviewer .* (does not exist|has no)"),
    (
        "PATCH /projects/{project_id}/audit-policies/{policy}",
        None,
        r"reviewer .* (does not exist|has no)",
    ),
    # a run needs annotations in its window that pass the policy, and reviewers for them
    (
        "POST /projects/{project_id}/audit-policies/{policy}/runs",
        None,
        r"nothing to audit|reviewer pool is empty|add another reviewer",
    ),
    # a patch is merged into the current settings before the rules across settings apply
    ("PATCH /projects/{project_id}/audit-policies/{policy}", r"spec", r"risk_weights"),
    # a cron expression must name a real date ('0 0 30 2 *' never fires)
    ("*", r"(spec\.)?cadence", r"never fires"),
    # flagging a label as uncertain needs a reason (the flag and its reason go together)
    ("POST /projects/{project_id}/annotations", r"uncertain_reason", r"a reason is required"),
    # external ids are unique within a batch
    ("POST /projects/{project_id}/items", r"items\.\d+\.external_id", r"repeats item"),
    # a guideline's labels must be the project's; exemplars name its items and labels
    *(
        (
            op,
            r"rules\[\d+\]\.(labels\[\d+\]|exemplars\[\d+\]\.(item|label)(\..*|\[.*)?)",
            ".*",
        )
        for op in (
            "PUT /projects/{project_id}/guidelines/draft",
            "POST /projects/{project_id}/guidelines/publish",
        )
    ),
    # a note names a member, one of the project's templates and its items, and fills the
    # template's required fields; a disagreement needs its reason
    (
        "POST /projects/{project_id}/feedback",
        r"recipient|template|items\[\d+\]|message|rule_refs|"
        r"what_was_right|what_to_change|context|indicator",
        ".*",
    ),
    ("POST /projects/{project_id}/feedback/notes/{note_id}/acknowledge", r"reason", r"say why"),
    # a draft's template and rules are the project's too
    ("PATCH /projects/{project_id}/feedback/notes/{note_id}", r"template|rule_refs", ".*"),
    # a ruling's label is the project's; its rationale at least the project's minimum;
    # its rules, exemplar and amendment name rules of the guideline
    ("POST /cases/{case_id}/ruling", r"label(\..*|\[.*)?", ".*"),
    ("POST /cases/{case_id}/ruling", r"rationale", r"say why|at least \d+ characters"),
    ("POST /cases/{case_id}/ruling", r"rules\[\d+\]|exemplar", r"no rule"),
    ("POST /cases/{case_id}/ruling", r"amend", r"name the rule|say how"),
    # a re-check compares an older version with a newer one; sending it needs annotations
    # to re-check and reviewers for them
    *(
        (op, r"from", r"must be older than")
        for op in (
            "GET /projects/{project_id}/guidelines/recheck",
            "POST /projects/{project_id}/guidelines/recheck",
        )
    ),
    (
        "POST /projects/{project_id}/guidelines/recheck",
        None,
        r"nothing to re-check|reviewer pool is empty|add another reviewer",
    ),
    # rule ids are unique within a guideline, and 'new' is the editor's
    ("PUT /projects/{project_id}/guidelines/draft", r"rules\[\d+\]\.id", r"is also|reserved"),
    # an escalation path's levels name project roles, with SLAs from a minute to a year
    ("PUT /projects/{project_id}/escalation/paths/{subject}", r"levels(\[\d+\])?", ".*"),
    # an Idempotency-Key names one request: the same key with another body is a 422
    ("*", None, r"Idempotency-Key was already used with a different request body"),
]

#: How often each of :data:`STATED_RULES` explained a 422 (printed with the timing).
DROPPED: Counter[int] = Counter()

#: Operations that must have answered 2xx at least once: the run reached real records.
MUST_SUCCEED = (
    "GET /projects/{project_id}/items",
    "POST /projects/{project_id}/items",
    "POST /projects/{project_id}/annotations",
    "POST /projects/{project_id}/gold",
    "POST /projects/{project_id}/predictions",
    "POST /projects/{project_id}/work/next",
    "POST /projects/{project_id}/audit-policies",
    "GET /projects/{project_id}/audit-policies/{policy}",
    "PATCH /projects/{project_id}/audit-policies/{policy}",
    "GET /audit-runs/{run_id}",
    "GET /audit-runs/{run_id}/report",
)


@dataclass
class Contract:
    demo: Demo
    app: FastAPI
    token: str
    labels: list[str]
    lead_id: int
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)


#: The contract of the running test (read by the hooks, which run while it generates).
CURRENT: list[Contract] = []


@pytest.fixture(scope="session")
def contract(
    backend: str,
    template_url: str,
    _postgres: _Postgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Contract]:
    """A demo database of its own, its app, and a lead's API token."""
    directory = tmp_path_factory.mktemp("contract")
    demo = _build(_copy_database(backend, template_url, _postgres, directory))
    app = create_app(make_settings(demo.url, Path(directory)))
    token = make_token(demo, ROLE_USERS["lead"], "lead")
    yield Contract(demo, app, token, [], user_id(demo, ROLE_USERS["lead"]))
    asgi.shutdown_lifespans()  # schemathesis started the app's lifespan (its engines)


def _label(op: str) -> str:
    return op.replace(PREFIX, "", 1) if op.split(" ", 1)[1].startswith(PREFIX) else op


def _valid(check: Any, value: Any) -> bool:
    try:
        check(value)
    except Exception:
        return False
    return True


#: Strict validators of the fields :func:`realistic_labels` replaces (as the API reads
#: them), so that it replaces only fields that were generated valid.
_STRICT = ConfigDict(strict=True, allow_inf_nan=False)
_FIELDS = {
    "annotator_id": TypeAdapter(schemas.Id | None, config=_STRICT),
    "attributes": TypeAdapter(schemas.JsonObject | None, config=_STRICT),
    "probabilities": TypeAdapter(schemas.Probabilities | None, config=_STRICT),
}
#: The bodies with a label, and the fields the label schema checks beside ``value``.
LABELLED = {
    "POST /projects/{project_id}/annotations": ("attributes",),
    "POST /projects/{project_id}/gold": (),
    "POST /projects/{project_id}/predictions": ("probabilities",),
}


def realistic_labels(context: Any, body: Any) -> Any:
    """``flatmap_body``: the generated body, or the same body with one of the project's
    labels as its value (and, for an annotation, the lead as its annotator), without
    the other fields the label schema checks. Only a body that has a value is varied,
    and only fields generated valid are replaced or dropped, so a body generated
    invalid stays invalid."""
    op = _label(context.operation.label)
    if op not in LABELLED or not isinstance(body, dict) or not CURRENT:
        return st.just(body)
    dropped = LABELLED[op]
    replaced = [*dropped, *(("annotator_id",) if op.endswith("/annotations") else ())]
    if (
        body.get("value") is None
        or not _valid(schemas.check_json, body["value"])
        or not all(_valid(_FIELDS[k].validate_python, body.get(k)) for k in replaced)
    ):
        return st.just(body)
    contract = CURRENT[-1]

    def labelled(label: str) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k not in dropped}
        out["value"] = label
        if "annotator_id" in replaced:
            out["annotator_id"] = contract.lead_id
        return out

    return st.one_of(st.just(body), st.sampled_from(contract.labels).map(labelled))


def _stated(op: str, status: int, text: str) -> bool:
    """Whether a 422 answer is made only of :data:`STATED_RULES` problems."""
    if status != 422:
        return False
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    rules = [(n, f, m) for n, (o, f, m) in enumerate(STATED_RULES) if o in ("*", op)]
    problems = error.get("details") or [{"field": None, "message": error.get("message", "")}]
    matched = []
    for p in problems:
        message = f"{error.get('message', '')} {p.get('message', '')}"
        found = [
            n
            for n, f, m in rules
            if (f is None or (p.get("field") is not None and re.fullmatch(f, p["field"])))
            and re.search(m, message)
        ]
        if not found:
            return False
        matched.append(found[0])
    DROPPED.update(matched)
    return True


def stated_rules(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """``filter_failure``: keep every failure but a 422 to schema-valid data made only of
    problems the schema cannot state (:data:`STATED_RULES`)."""
    if isinstance(failure, RejectedPositiveData):
        return not _stated(_label(case.operation.label), response.status_code, response.text)
    return True


def _schema(contract: Contract, *, guidelines: bool = False) -> Any:
    """The app's schema with the hooks: every operation but the guidelines', or (with
    ``guidelines``) only those. Two runs keep each one's generated stream apart: new
    operations in one run would reshuffle what the other's scenarios reach."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": bearer(contract.token),
            "generation": {"max-examples": EXAMPLES, "deterministic": True},
            "phases": {
                # the guideline operations have no links to follow
                "stateful": {"enabled": False}
                if guidelines
                else {"generation": {"max-examples": SCENARIOS, "deterministic": True}}
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", contract.app, config=config)
    schema.hook("flatmap_body")(realistic_labels)
    schema.hook("filter_failure")(stated_rules)
    if guidelines:
        return schema.include(path_regex="/guidelines")
    return schema.exclude(path_regex="/guidelines")


def _run(contract: Contract, schema: Any) -> list[str]:
    """Run every phase of schemathesis on ``schema``; the failures (statuses are
    counted in ``contract.statuses``)."""
    CURRENT.append(contract)
    failures: list[str] = []
    phases: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                phases[event.phase.value] += event.elapsed_time
                recorder = event.recorder
                for case_id, interaction in recorder.interactions.items():
                    if interaction.response is not None:
                        op = _label(recorder.cases[case_id].value.operation.label)
                        contract.statuses[(op, interaction.response.status_code)] += 1
                for checks in recorder.checks.values():
                    failures += [
                        f"{c.failure_info.failure.title}: {c.failure_info.failure.message}\n"
                        f"{c.failure_info.code_sample}"
                        for c in checks
                        if c.failure_info is not None
                    ]
            elif isinstance(event, events.NonFatalError | events.FatalError):
                failures.append(f"error: {getattr(event, 'info', event)}")
    finally:
        CURRENT.remove(contract)
    elapsed = time.perf_counter() - started
    print(f"schemathesis on {contract.demo.url.split(':')[0]}: {elapsed:.1f} s", dict(phases))
    for k, v in sorted(contract.statuses.items()):
        print(k, v)
    for n, count in sorted(DROPPED.items()):
        print(f"stated rule {STATED_RULES[n]}: {count}")
    return failures


def test_api_keeps_its_contract(contract: Contract) -> None:
    """Every check of every phase passes, and the run reached real records."""
    base, headers = f"{PREFIX}/projects/{contract.demo.project_id}", bearer(contract.token)
    with TestClient(contract.app) as client:
        project = client.get(base, headers=headers).json()
        # the policy the schema's examples name (as `labelloop demo` has it)
        r = client.post(f"{base}/audit-policies", json=EXAMPLE_POLICY, headers=headers)
        assert r.status_code == 201, r.text
        # the lead has read the demo's guideline (else the queue holds their next item)
        pending = client.get(f"{base}/guidelines/pending", headers=headers).json()["version"]
        if pending is not None:
            ack = {"version": pending}
            r = client.post(f"{base}/guidelines/acknowledge", json=ack, headers=headers)
            assert r.status_code == 200, r.text
    contract.labels = [lab["name"] for lab in project["schema"]["labels"]]
    failures = _run(contract, _schema(contract))
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    succeeded = {op for (op, status), _ in contract.statuses.items() if 200 <= status < 300}
    missing = [op for op in MUST_SUCCEED if op not in succeeded]
    assert not missing, f"never answered 2xx: {missing}"


#: Guideline operations that must have answered 2xx at least once.
GUIDELINES_MUST_SUCCEED = (
    "GET /projects/{project_id}/guidelines",
    "GET /projects/{project_id}/guidelines/versions",
    "GET /projects/{project_id}/guidelines/diff",
    "GET /projects/{project_id}/guidelines/pending",
    "PUT /projects/{project_id}/guidelines/draft",
    "GET /projects/{project_id}/guidelines/recheck",
    "POST /projects/{project_id}/guidelines/recheck",
)


def _work_before_the_current_version(contract: Contract) -> None:
    """Stamp the demo's first 50 annotations with version 1.0 (the demo labels after
    1.1), so that the re-check of 1.0 → 1.1 has a list to send."""
    engine = make_engine(contract.demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            first = (
                select(Annotation.id)
                .where(Annotation.project_id == contract.demo.project_id)
                .order_by(Annotation.id)
                .limit(50)
            )
            ids = s.scalars(first).all()
            s.execute(
                update(Annotation).where(Annotation.id.in_(ids)).values(guideline_version="1.0")
            )
    finally:
        engine.dispose()


def test_guideline_api_keeps_its_contract(contract: Contract) -> None:
    """The guideline operations on their own (the demo has published versions)."""
    _work_before_the_current_version(contract)
    with TestClient(contract.app) as client:
        base = f"{PREFIX}/projects/{contract.demo.project_id}"
        project = client.get(base, headers=bearer(contract.token)).json()
    contract.labels = [lab["name"] for lab in project["schema"]["labels"]]
    failures = _run(contract, _schema(contract, guidelines=True))
    assert not failures, "\n\n".join(dict.fromkeys(failures))
    succeeded = {op for (op, status), _ in contract.statuses.items() if 200 <= status < 300}
    missing = [op for op in GUIDELINES_MUST_SUCCEED if op not in succeeded]
    assert not missing, f"never answered 2xx: {missing}"
