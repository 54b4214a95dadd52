"""Splits: leave-one-out, global temporal, time windows. (stub)"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Split:
    pass


def leave_one_out(data):
    raise NotImplementedError


def temporal_split(data, test_fraction=0.2, valid_fraction=0.0):
    raise NotImplementedError


def time_windows(data, n_windows, by="count"):
    raise NotImplementedError
