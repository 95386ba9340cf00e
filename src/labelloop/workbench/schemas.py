"""I/O shapes of the workbench: queue settings, the blind item view, queue counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labelloop.projects.validation import payload_text

#: Longest reason an annotator may give for a skip or an uncertainty flag.
MAX_REASON = 1000

_IMAGE_KEYS = ("image", "image_url", "img", "url", "src", "picture")
_IMAGE_URL = re.compile(r"^(https?://|/)[^\s\"'<>]+$|^data:image/[a-z+.-]+;base64,[A-Za-z0-9+/=]+$")
_IMAGE_EXT = re.compile(r"\.(png|jpe?g|gif|webp|svg|bmp|avif)(\?.*)?$", re.IGNORECASE)


class SettingsIn(BaseModel):
    """A change to a project's queue settings (fields left out stay as they are)."""

    model_config = ConfigDict(extra="forbid")

    overlap: int | None = Field(default=None, ge=1, le=100)
    gold_rate: float | None = Field(default=None, ge=0, le=1)
    lease_minutes: int | None = Field(default=None, ge=1, le=24 * 60)


class SettingsOut(BaseModel):
    """A project's queue settings as the CLI and pages show them."""

    model_config = ConfigDict(from_attributes=True)

    project_id: int
    overlap: int
    gold_rate: float
    lease_minutes: int


@dataclass(frozen=True)
class WorkItem:
    """What the annotator sees of the item they hold: payload and context only.

    Blind by construction: no other annotations, no gold label, no predictions, no
    tags, and nothing that tells a hidden gold check from any other item.
    """

    item_id: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    segments: dict[str, Any]
    leased_at: datetime
    expires_at: datetime

    @property
    def text(self) -> str | None:
        """The text spans are selected in (the validator's choice of field)."""
        return payload_text(self.payload)

    @property
    def display_text(self) -> str | None:
        """The text to show: :attr:`text`, unless that is only the image's URL."""
        text = self.text
        return None if text is not None and text == self.image_url else text

    @property
    def image_url(self) -> str | None:
        """An image to show: a payload field named like an image whose value is an
        http(s), site-relative or ``data:image`` URL (or any such URL ending in an image
        extension)."""
        for key in _IMAGE_KEYS:
            v = self.payload.get(key)
            if isinstance(v, str) and _IMAGE_URL.match(v):
                return v
        for v in self.payload.values():
            if isinstance(v, str) and _IMAGE_URL.match(v) and _IMAGE_EXT.search(v):
                return v
        return None


@dataclass(frozen=True)
class QueueStatus:
    """The annotator's counts for the queue page."""

    done_today: int
    done_total: int
    skipped: int
    remaining: int
    overlap: int
