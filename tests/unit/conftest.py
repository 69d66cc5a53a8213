"""Fixtures for the pure-core unit tests (helpers live in tests/unit/helpers.py)."""

from tests.unit.helpers import calibration_csv

__all__ = ["calibration_csv"]
