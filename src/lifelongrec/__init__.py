"""lifelongrec: a recommender engine whose deep models keep learning.

The flow runs one way: ``data`` -> ``features`` -> ``models`` -> ``training`` ->
``registry`` -> ``serving``; ``evaluation`` judges every step from outside.
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
