"""Fixtures shared by the model tests: the two-group world of ``test_sequential`` and a
tiny sequential model fitted on it (a module's own ``world`` / ``fitted`` fixture takes
precedence)."""

from __future__ import annotations

import pytest
from test_sequential import TINY, two_worlds

from lifelongrec.models import SequentialRecommender


@pytest.fixture(scope="module")
def world():
    return two_worlds()


@pytest.fixture(scope="module")
def fitted(world):
    return SequentialRecommender(**TINY).fit(world)
