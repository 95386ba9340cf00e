"""Domain errors, one tree for the whole package.

::

    LabelLoopError
    ├── NotFound              a record named by the caller does not exist
    ├── Conflict              the write would break a uniqueness or state rule
    │   └── AcknowledgementRequired  a new guideline version must be read first
    ├── PermissionDenied      the actor's roles do not allow the action
    ├── RateLimited           the actor did this as often as allowed for now
    ├── ValidationFailed      input broke the label schema or a rule (carries violations)
    ├── ImportFailed          a file could not be imported (carries issues; nothing written)
    ├── ConfigurationError    settings or files given to a command are unusable
    └── TrailBroken           the audit trail's hash chain does not verify

Domain errors carry no HTTP or exit codes: ``labelloop.cli`` and ``labelloop.web`` map
them in one place each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class LabelLoopError(Exception):
    """Base of every error LabelLoop raises on purpose."""


class NotFound(LabelLoopError):
    pass


class Conflict(LabelLoopError):
    pass


class AcknowledgementRequired(Conflict):
    """The actor must read and acknowledge guideline ``version`` before labelling on."""

    def __init__(self, message: str, *, version: str) -> None:
        super().__init__(message)
        self.version = version


class PermissionDenied(LabelLoopError):
    pass


class RateLimited(LabelLoopError):
    """The actor did this as often as allowed for now (e.g. anonymous notes a day)."""


class ConfigurationError(LabelLoopError):
    pass


class ValidationFailed(LabelLoopError):
    """Input broke the schema; ``violations`` lists every problem with its field path."""

    def __init__(self, message: str, violations: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.violations = list(violations)


class ImportFailed(LabelLoopError):
    """A file was refused; ``issues`` holds the first problems, ``total`` counts all."""

    def __init__(self, message: str, issues: Sequence[Any] = (), total: int | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues)
        self.total = len(self.issues) if total is None else total


class TrailBroken(LabelLoopError):
    """The event chain does not verify; ``problems`` names each broken event."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)
