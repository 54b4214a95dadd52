"""Fixtures for the data tests: the real datasets, each loaded once per session.

Each fixture skips when its folder is absent under ``../shared/data`` (see the
``shared_data`` fixture in ``tests/conftest.py``).
"""

from pathlib import Path

import pytest

from lifelongrec.data import (
    read_amazon_reviews,
    read_movielens_100k,
    read_movielens_csv,
    read_sequence_file,
)


def _need(shared_data: Path, name: str) -> Path:
    path = shared_data / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def ml100k_dir(shared_data):
    return _need(shared_data, "ml-100k")


@pytest.fixture(scope="session")
def mlsmall_dir(shared_data):
    return _need(shared_data, "ml-latest-small")


@pytest.fixture(scope="session")
def amazon_file(shared_data):
    return _need(shared_data, "amazon-2018-all-beauty-5core/All_Beauty_5.json.gz")


@pytest.fixture(scope="session")
def beauty_file(shared_data):
    return _need(shared_data, "bert4rec-beauty/beauty.txt")


@pytest.fixture(scope="session")
def ml100k(ml100k_dir):
    return read_movielens_100k(ml100k_dir)


@pytest.fixture(scope="session")
def mlsmall(mlsmall_dir):
    return read_movielens_csv(mlsmall_dir)


@pytest.fixture(scope="session")
def amazon(amazon_file):
    return read_amazon_reviews(amazon_file)


@pytest.fixture(scope="session")
def beauty(beauty_file):
    return read_sequence_file(beauty_file)
