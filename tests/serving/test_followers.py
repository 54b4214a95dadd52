"""The follower threads of an API process: the store follower and the bus follower say
once when their server goes away and once when it is back, keep trying, and the store
follower looks more often while the bus is away."""

import logging
import threading
import time

import pandas as pd

from lifelongrec.data import BusUnavailableError, StoreUnavailableError
from lifelongrec.serving._follow import (
    FOLLOW_STORE_SECONDS,
    FOLLOW_STORE_WITH_BUS_SECONDS,
    BusFollower,
    StoreFollower,
)


def _until(what, seconds=10):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not what():
        time.sleep(0.01)
    assert what()


def test_the_store_follower_says_once_per_outage_and_goes_on(caplog):
    calls = []

    def follow():
        calls.append(1)
        if 3 <= len(calls) <= 6:
            raise StoreUnavailableError("the event store is unavailable (a test)")

    follower = StoreFollower(follow)
    with caplog.at_level(logging.WARNING, logger="lifelongrec"):
        follower.start()
        _until(lambda: len(calls) >= 10)
        follower.stop()
    said = [r.getMessage() for r in caplog.records]
    assert sum("following the store paused" in m for m in said) == 1
    assert sum("following the store again" in m for m in said) == 1
    assert not follower.running


class Feed:
    """An EventFeed stand-in: events 1..n, one read at a time, after a cursor."""

    def __init__(self, n):
        self.n = n

    def read(self, after_seq, block_ms=0):
        time.sleep(0.005)
        if after_seq >= self.n:
            return pd.DataFrame(), after_seq
        return pd.DataFrame({"seq": [after_seq + 1]}), after_seq + 1

    def done(self, upto):
        return 0


def test_the_bus_follower_retries_an_unreachable_bus_and_sets_the_store_pace(caplog):
    opened, taken, cursor = [], [], [0]
    bus_up = threading.Event()

    def open_feed():
        opened.append(1)
        if not bus_up.is_set():
            raise BusUnavailableError("the event bus is unavailable (a test)")
        return Feed(5)

    def take_in(events, upto):
        taken.append(upto)
        cursor[0] = upto

    follower = BusFollower(open_feed, take_in, lambda: cursor[0])
    with caplog.at_level(logging.WARNING, logger="lifelongrec"):
        follower.start()
        _until(lambda: len(opened) >= 1)
        assert not follower.healthy and follower.interval() == FOLLOW_STORE_SECONDS
        bus_up.set()  # the next try (a second later) reaches it
        _until(lambda: taken == [1, 2, 3, 4, 5])
        assert follower.healthy and follower.interval() == FOLLOW_STORE_WITH_BUS_SECONDS
        follower.stop()
    said = [r.getMessage() for r in caplog.records]
    assert sum("following the event bus paused" in m for m in said) == 1
    assert sum("following the event bus again" in m for m in said) == 1
