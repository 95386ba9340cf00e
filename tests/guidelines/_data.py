"""Shared test data: the example guideline file and the support-ticket label schema."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "guideline.md"
INTENT = {
    "task_type": "single",
    "labels": ["billing", "refund", "technical", "account", "other"],
}
