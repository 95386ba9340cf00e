"""LabelLoop: audits, feedback and training loops that keep labeled data trustworthy."""

__version__ = "0.1.0"
