"""Preprocessing: de-duplication, implicit feedback, k-core, stable time order. (stub)"""
from __future__ import annotations


def sort_by_time(data):
    raise NotImplementedError


def deduplicate(data, subset=("user_id", "item_id", "timestamp", "event_type"), keep="first"):
    raise NotImplementedError


def implicit_feedback(data, threshold=4.0):
    raise NotImplementedError


def kcore(data, k=5, user_k=None, item_k=None):
    raise NotImplementedError
