"""Reading HTML form fields, shared by the pages that take labels and settings."""

from __future__ import annotations

import math


def form_number(raw: str) -> int | float | str:
    """A form field as a number (an int when written as one), or the text itself when it
    is no finite number, so the label validator names the field."""
    try:
        v = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(v):
        return raw
    return int(v) if v.is_integer() and "." not in raw and "e" not in raw.lower() else v
