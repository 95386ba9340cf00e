"""Feedback to annotators, and the anonymous channel."""
