"""What may be an identifier (a username, an external id, a label or policy name): text
that reads the same on every screen and in every file.

Refused: control characters (NUL, CR, LF, ESC, ...), invisible format characters
(bidirectional overrides and isolates such as U+202E, zero-width spaces and joiners,
the BOM), lone surrogates (not text at all; they cannot be stored as UTF-8), and
leading or trailing whitespace. Such characters make two different identifiers look
alike, reorder what a reviewer reads ("Trojan Source", CVE-2021-42574), or break the
storage and file formats. Pure functions; no database.
"""

from __future__ import annotations

import re
import unicodedata

#: The largest record id anywhere (PostgreSQL ``integer`` columns are 32-bit; SQLite's
#: 64-bit): one bound at every boundary makes both databases answer alike.
MAX_ID = 2**31 - 1

#: Account names that can sign in: ASCII letters and digits first, then letters,
#: digits and ``. _ @ + -`` (so e-mail addresses work), at most 150 characters. The
#: first character cannot start a spreadsheet formula (``= + - @``).
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,149}")
USERNAME_RULE = (
    "1-150 characters: ASCII letters, digits and . _ @ + -, starting with a letter or digit"
)


def problem(text: str) -> str | None:
    """Why ``text`` cannot be an identifier, or ``None`` when it can."""
    if not text:
        return "must not be empty"
    if text != text.strip():
        return "must not start or end with whitespace"
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            return f"contains a lone surrogate (U+{ord(ch):04X}), which is not text"
        if category == "Cc":
            return f"contains the control character U+{ord(ch):04X}"
        if category == "Cf":
            name = unicodedata.name(ch, "format character")
            return f"contains the invisible character U+{ord(ch):04X} ({name.lower()})"
    return None


def normal_username(text: str) -> str:
    """A username as typed, in the form it is stored and looked up: NFKC, trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def login_key(text: str) -> str:
    """The one normal form of a typed username for sign-in and throttling: NFKC,
    trimmed, case-folded, then NFKC again (case folding can leave a string that is not
    in NFKC, so only the second pass makes the key a fixed point). Every spelling that
    signs in as a user maps to that user's key, so no spelling escapes the throttle."""
    return unicodedata.normalize("NFKC", normal_username(text).casefold()).strip()
