"""The append-only, hash-chained audit trail."""

from labelloop.trail import service

__all__ = ["service"]
