"""StepThreads: the CPU threads of each training step, chosen by timing steps."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from lifelongrec.data import make_events
from lifelongrec.models import SequentialRecommender
from lifelongrec.nn import StepThreads

CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    """Torch on two threads for the test, its own setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class FakeClock:
    """``time.perf_counter`` for the test: it moves only when a step says so, so a
    busy machine cannot change what the steps are timed at."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def _run(
    threads: StepThreads,
    n_steps: int,
    seconds: dict[int, float],
    tokens: int = 1024,
    clock: FakeClock | None = None,
):
    """``n_steps`` steps that take ``seconds[threads they run on]`` (on ``clock``, or
    sleeping without one); the counts seen."""
    seen = []
    with threads.running(CPU):
        for _ in range(n_steps):
            with threads.step(tokens):
                n = torch.get_num_threads()
                seen.append(n)
                if clock is None:
                    time.sleep(seconds[n])
                else:
                    clock.now += seconds[n]
    return seen


def test_steps_no_faster_on_two_threads_run_on_one(two_threads, clock):
    threads = StepThreads(probe_steps=2)
    seen = _run(threads, 10, {1: 0.004, 2: 0.004}, clock=clock)
    # probe: a block of 3 on one thread, a block of 3 on two; then the choice
    assert seen == [1, 1, 1, 2, 2, 2, 1, 1, 1, 1]
    assert threads.choices == {(2, 10): 1}
    assert torch.get_num_threads() == 2  # restored after the run


def test_steps_much_faster_on_two_threads_keep_them(two_threads, clock):
    threads = StepThreads(probe_steps=2)
    # cost (1 + n) * seconds: 2 * 0.012 on one thread against 3 * 0.003 on two
    seen = _run(threads, 9, {1: 0.012, 2: 0.003}, clock=clock)
    assert seen[6:] == [2, 2, 2]
    assert threads.choices == {(2, 10): 2}


def test_a_second_thread_must_save_a_third_of_the_step(two_threads, clock):
    # 1.25x faster on two threads: 2 * 0.010 < 3 * 0.008, one thread wins
    threads = StepThreads(probe_steps=2)
    _run(threads, 7, {1: 0.010, 2: 0.008}, clock=clock)
    assert threads.choices == {(2, 10): 1}


def test_each_size_is_decided_once_and_remembered(two_threads, clock):
    threads = StepThreads(probe_steps=1)
    _run(threads, 4, {1: 0.002, 2: 0.002}, tokens=1000, clock=clock)  # 2**10
    _run(threads, 4, {1: 0.002, 2: 0.002}, tokens=100, clock=clock)  # 2**7: probed on its own
    assert threads.choices == {(2, 10): 1, (2, 7): 1}
    # a later run of a decided size starts on the choice at once
    assert _run(threads, 2, {1: 0.0, 2: 0.0}, tokens=1100, clock=clock) == [1, 1]


def test_probing_goes_on_across_runs(two_threads, clock):
    threads = StepThreads(probe_steps=1)
    assert _run(threads, 3, {1: 0.002, 2: 0.002}, clock=clock) == [1, 1, 2]
    assert threads.choices == {}
    assert torch.get_num_threads() == 2
    assert _run(threads, 2, {1: 0.002, 2: 0.002}, clock=clock) == [2, 1]
    assert threads.choices == {(2, 10): 1}


def test_rest_gives_torch_its_threads_until_the_next_step(two_threads, clock):
    threads = StepThreads(probe_steps=1)
    _run(threads, 4, {1: 0.001, 2: 0.001}, clock=clock)
    with threads.running(CPU):
        with threads.step(1024):
            assert torch.get_num_threads() == 1
        threads.rest()
        assert torch.get_num_threads() == 2


def test_fixed_count_and_restore_after_an_error(two_threads):
    threads = StepThreads()
    with pytest.raises(RuntimeError, match="boom"), threads.running(CPU, fixed=1):
        with threads.step(1024):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    assert threads.choices == {}


def test_nothing_changes_on_one_thread_or_a_gpu():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        threads = StepThreads(probe_steps=1)
        assert _run(threads, 5, {1: 0.0}) == [1] * 5
        assert threads.choices == {}
    finally:
        torch.set_num_threads(before)
    torch.set_num_threads(2)
    try:
        threads = StepThreads(probe_steps=1)
        with threads.running(torch.device("cuda")):  # only its type is read
            with threads.step(1024):
                assert torch.get_num_threads() == 2
        assert threads.choices == {}
    finally:
        torch.set_num_threads(before)


def test_probe_steps_must_be_positive():
    with pytest.raises(ValueError, match="probe_steps"):
        StepThreads(probe_steps=0)


def _events(n_users: int = 30, n_items: int = 40, per_user: int = 12):
    rng = np.random.default_rng(0)
    users = np.repeat([f"u{i}" for i in range(n_users)], per_user)
    items = [f"i{j}" for j in rng.integers(0, n_items, len(users))]
    return make_events(users, items, np.arange(len(users)))


def test_sequential_model_training_threads(two_threads):
    ev = _events()
    kw = {"dim": 16, "epochs": 2, "validation": False, "verbose": False, "device": "cpu"}
    one = SequentialRecommender(train_threads=1, **kw).fit(ev)
    assert torch.get_num_threads() == 2  # its own count during fit, torch's after
    chosen = SequentialRecommender(**kw).fit(ev)
    assert torch.get_num_threads() == 2
    # the same steps, whatever threads they ran on
    (ids_a, a), (ids_b, b) = one.item_vectors(), chosen.item_vectors()
    assert list(ids_a) == list(ids_b)
    np.testing.assert_allclose(a, b, atol=1e-4)
