"""A simulated team on realistic data, for ``labelloop demo`` and for tests.

:mod:`labelloop.demo.simulate` is pure (numpy only); :mod:`labelloop.demo.builder`
loads the simulation into a database through the services.
"""

from labelloop.demo.simulate import AnnotationTrace, AnnotatorProfile, DemoData, simulate

__all__ = ["AnnotationTrace", "AnnotatorProfile", "DemoData", "simulate"]
