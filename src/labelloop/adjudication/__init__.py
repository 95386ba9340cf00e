"""Disagreement cases: detection, the adjudicator's queue, and rulings."""
