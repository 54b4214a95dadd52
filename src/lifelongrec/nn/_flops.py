"""A process-wide count of the training FLOPs that models estimate they spent, read like
a clock: take :func:`training_flops` before and after a learning call, and the difference
is what that call trained, whatever model objects it built, copied or refit on the way
(the prequential protocol reports it beside CPU seconds). A model adds its estimate
with :func:`add_training_flops` as it trains; models that estimate nothing add nothing.
"""

from __future__ import annotations

import threading

__all__ = ["add_training_flops", "training_flops"]

_lock = threading.Lock()
_total = 0.0


def add_training_flops(flops: float) -> None:
    """Count ``flops`` (estimated floating-point operations, >= 0) of training."""
    global _total
    if not flops >= 0:  # also refuses NaN
        raise ValueError(f"add_training_flops: expected flops >= 0, got {flops!r}")
    with _lock:
        _total += float(flops)


def training_flops() -> float:
    """The estimated training FLOPs counted in this process so far."""
    with _lock:
        return _total
