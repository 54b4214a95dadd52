"""lifelongrec: a recommender engine whose deep models keep learning.

The flow runs one way: ``data`` -> ``features`` -> ``models`` -> ``training`` ->
``registry`` -> ``serving``; ``evaluation`` judges every step from outside. Below them
all, every part may import the metrics (:mod:`lifelongrec.metrics`) and the torch
toolkit (:mod:`lifelongrec.nn`).
"""

from lifelongrec._errors import (
    DataError,
    LifelongrecError,
    NotFittedError,
    ParameterError,
    UnknownIdError,
)

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "LifelongrecError",
    "NotFittedError",
    "ParameterError",
    "UnknownIdError",
    "__version__",
]
