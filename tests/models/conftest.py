"""Fixtures shared by the model tests: the two-group world of ``test_sequential`` and a
tiny sequential model fitted on it."""

from __future__ import annotations

import pytest
from test_sequential import TINY, two_worlds

from lifelongrec.models import SequentialRecommender


@pytest.fixture(scope="module")
def seq_world():
    return two_worlds()


@pytest.fixture(scope="module")
def seq_fitted(seq_world):
    return SequentialRecommender(**TINY).fit(seq_world)
