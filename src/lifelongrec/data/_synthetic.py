"""The synthetic world. (stub)"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SyntheticWorld:
    n_events: int = 100_000
    seed: int = 0


def synthetic(n_events=100_000, seed=0, **kwargs):
    raise NotImplementedError
