"""Readers with format auto-detection. (stub)"""
from __future__ import annotations

FORMATS = ()


def detect_format(path):
    raise NotImplementedError


def load(path, format=None, **kwargs):
    raise NotImplementedError


def read_movielens_100k(path):
    raise NotImplementedError


def read_movielens_csv(path):
    raise NotImplementedError


def read_movielens_dat(path):
    raise NotImplementedError


def read_amazon_reviews(path):
    raise NotImplementedError


def read_sequence_file(path):
    raise NotImplementedError


def read_table(path, columns=None, **kwargs):
    raise NotImplementedError
