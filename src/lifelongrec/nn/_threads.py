"""How many CPU threads a training step runs on, chosen by timing steps.

A step of a small model on short windows (a lifelong update's, an online step's) is too
small to split well: torch's intra-op threads spin while they wait, and a step on two
threads takes nearly as long as on one while it burns twice the CPU. A step of a large
batch of long windows may run much faster on more threads. :class:`StepThreads` tells
them apart on the machine it runs on: for each size of step (the tokens of its batch, in
powers of two) it times a few steps on each candidate count (one thread, the powers of
two below torch's count, torch's count) and keeps the count ``n`` with the least
``(1 + n) * seconds``, the step's wall time plus the CPU time of its ``n`` threads: a
second of CPU weighs as much as a second of waiting. Two threads are kept only if they
make a step at least 1.5 times faster than one. Steps of a size already decided run on
its count at once. Nothing it does changes what a step computes.

It changes torch's process-wide thread count while a step runs
(``torch.set_num_threads``) and puts it back after each run (:meth:`StepThreads.running`);
it does nothing where torch has one thread, on a GPU, or with a fixed count.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

__all__ = ["StepThreads"]

#: Steps timed on each candidate before a size is decided (after one untimed step each).
PROBE_STEPS = 3


@dataclass
class _Probe:
    """The timings of one step size: ``schedule`` left to run, seconds per count."""

    schedule: list[int]
    seconds: dict[int, list[float]] = field(default_factory=dict)
    counted: set[int] = field(default_factory=set)
    chosen: int | None = None


class StepThreads:
    """The thread count of each training step (see the module docstring).

    Parameters
    ----------
    probe_steps
        Steps timed on each candidate (after one untimed step on it).
    """

    def __init__(self, probe_steps: int = PROBE_STEPS) -> None:
        if int(probe_steps) < 1:
            raise ValueError(f"probe_steps must be at least 1, got {probe_steps!r}")
        self.probe_steps = int(probe_steps)
        self._probes: dict[tuple[int, int], _Probe] = {}
        self._most = 1
        self._active = False
        self._fixed: int | None = None

    @property
    def choices(self) -> dict[tuple[int, int], int]:
        """The decided sizes: ``{(torch's threads, log2 of a step's tokens rounded):
        threads}``."""
        return {k: int(p.chosen) for k, p in self._probes.items() if p.chosen is not None}

    @contextlib.contextmanager
    def running(self, device: torch.device, fixed: int | None = None) -> Iterator[StepThreads]:
        """Steps of one training run go inside, on ``fixed`` threads each, or (``None``)
        on the count chosen for their size; torch's thread count is what it was after.

        On a GPU, or where torch has one thread and no fixed count asks for more, the
        steps run as torch is set."""
        before = torch.get_num_threads()
        self._most, self._fixed = before, fixed
        self._active = device.type == "cpu" and (fixed is not None or before > 1)
        try:
            if self._active and fixed is not None:
                torch.set_num_threads(int(fixed))
            yield self
        finally:
            self._active = False
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    @contextlib.contextmanager
    def step(self, tokens: int) -> Iterator[None]:
        """One training step of ``tokens`` (batch rows times window length)."""
        if not self._active or self._fixed is not None:
            yield
            return
        most = self._most
        key = (most, max(0, round(math.log2(max(int(tokens), 1)))))
        probe = self._probes.get(key)
        if probe is None:
            # a block of steps on each candidate; the first step of a block is not timed
            # (it warms up; a thread left spinning by the step before would slow it)
            k = self.probe_steps + 1
            probe = self._probes[key] = _Probe([n for n in _candidates(most) for _ in range(k)])
        if probe.chosen is not None:
            self._use(probe.chosen)
            yield
            return
        n = probe.schedule[0]
        self._use(n)
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        probe.schedule.pop(0)
        if n in probe.counted:
            probe.seconds.setdefault(n, []).append(seconds)
        probe.counted.add(n)
        if not probe.schedule:
            probe.chosen = self._decide(probe.seconds)

    def rest(self) -> None:
        """Torch's own thread count again until the next step (for work between steps,
        such as a validation pass)."""
        if self._active and self._fixed is None:
            self._use(self._most)

    def _decide(self, seconds: dict[int, list[float]]) -> int:
        # a step on n threads costs its wall time plus the CPU time of n threads (which
        # spin while they wait): the fewest-cost count, one thread on a tie
        return min(sorted(seconds), key=lambda n: (1 + n) * _median(seconds[n]))

    def _use(self, n: int) -> None:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def _candidates(most: int) -> list[int]:
    """One thread, the powers of two below ``most``, and ``most``."""
    out, n = [], 1
    while n < most:
        out.append(n)
        n *= 2
    return [*out, most]


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2
