"""Dataset statistics for `lifelongrec data info`. (stub)"""
from __future__ import annotations


def describe(data):
    raise NotImplementedError
