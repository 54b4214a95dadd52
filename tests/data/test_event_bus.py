"""The event bus (Redis Streams) and the feed that reads stored events through it: a
round trip, the fan-out and group readers, and the cases where the store fills in
(a gap, a publish that never happened, a bus that lost everything), each event taken
once and in order."""

import numpy as np
import pandas as pd
import pytest

from lifelongrec._errors import ParameterError
from lifelongrec.data import (
    BusUnavailableError,
    EventFeed,
    EventStore,
    RedisEventBus,
    StoreFeed,
    is_bus_url,
    make_events,
)


def batch(n, start=0, user="u"):
    return make_events(
        [f"{user}{k % 3}" for k in range(start, start + n)],
        [f"i{k}" for k in range(start, start + n)],
        np.arange(start, start + n, dtype=np.int64),
        "view",
        [float(k) if k % 2 else np.nan for k in range(start, start + n)],
    )


@pytest.fixture
def store(tmp_path):
    with EventStore(tmp_path / "events.sqlite") as s:
        yield s


@pytest.fixture
def bus(bus_url):
    b = RedisEventBus(bus_url)
    yield b
    b.close()


def write(store, bus, frame, publish=True):
    """Store a batch, then publish what was written (as the service does)."""
    r = store.append(frame)
    if publish:
        bus.publish(frame, r.seqs)
    return r


def test_urls_and_an_unreachable_server():
    assert is_bus_url("redis://h:6379/0") and not is_bus_url("nats://h") and not is_bus_url(3)
    with pytest.raises(ParameterError, match="redis:// URL"):
        RedisEventBus("nats://127.0.0.1:4222")
    with pytest.raises(BusUnavailableError, match="unavailable") as info:
        RedisEventBus("redis://:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in str(info.value)
    quiet = RedisEventBus("redis://127.0.0.1:1/0", check=False)  # finds out on first use
    with pytest.raises(BusUnavailableError):
        quiet.publish(batch(1), [1])


def test_a_published_batch_comes_back_equal(bus):
    start = bus.last_id()
    frame = batch(5)
    bus.publish(frame, [11, 12, 13, 14, 15])
    [entry] = bus.tail(start, block_ms=100)
    assert entry.id == bus.last_id() and (entry.first, entry.last) == (11, 15)
    want = frame.assign(seq=np.arange(11, 16, dtype=np.int64))
    pd.testing.assert_frame_equal(entry.frame, want)
    assert bus.tail(entry.id, block_ms=10) == []
    with pytest.raises(ParameterError, match="seqs"):
        bus.publish(batch(0), [])


def test_a_follower_takes_published_events_once_and_in_order(store, bus):
    feed = EventFeed(store, bus)
    write(store, bus, batch(4))
    write(store, bus, batch(3, 4))
    got, upto = feed.read(after_seq=0)
    assert got["seq"].tolist() == list(range(1, 8)) and upto == 7
    assert (feed.bus_events, feed.store_reads) == (7, 0)  # all from the bus
    pd.testing.assert_frame_equal(got, store.read())
    empty, same = feed.read(after_seq=7, block_ms=10)
    assert empty.empty and same == 7


def test_the_store_fills_a_gap_the_bus_does_not_carry(store, bus):
    feed = EventFeed(store, bus, store_every=3600)
    write(store, bus, batch(2))
    write(store, bus, batch(3, 2), publish=False)  # stored, its publish failed
    write(store, bus, batch(2, 5))
    got, upto = feed.read(after_seq=0)
    # the first entry from the bus; the second does not continue it: the store is read
    assert got["seq"].tolist() == list(range(1, 8)) and upto == 7
    assert feed.store_reads == 1
    assert feed.read(after_seq=upto, block_ms=10)[0].empty  # the covered entry: not again


def test_a_quiet_bus_still_finds_what_the_store_has(store, bus):
    feed = EventFeed(store, bus, store_every=0)
    write(store, bus, batch(3), publish=False)
    got, upto = feed.read(after_seq=0, block_ms=10)
    assert got["seq"].tolist() == [1, 2, 3] and upto == 3 and feed.store_reads == 1


def test_entries_out_of_order_are_each_taken_once(store, bus):
    """Two writers publish after their commits, the later commit first."""
    feed = EventFeed(store, bus, store_every=3600)
    first = store.append(batch(2))
    second = store.append(batch(2, 2))
    bus.publish(batch(2, 2), second.seqs)
    bus.publish(batch(2), first.seqs)
    got, upto = feed.read(after_seq=0)
    assert got["seq"].tolist() == [1, 2, 3, 4] and upto == 4
    assert feed.read(after_seq=4, block_ms=10)[0].empty


def test_a_group_acknowledges_what_was_learned_and_redelivers_the_rest(store, bus):
    feed = EventFeed(store, bus, group="learner", consumer="learner")
    write(store, bus, batch(2))
    write(store, bus, batch(2, 2))
    got, upto = feed.read(after_seq=0)
    assert upto == 4 and bus.pending("learner") == 2
    assert feed.done(2) == 1 and bus.pending("learner") == 1  # the first entry learned
    # The learner dies before learning the rest; the next one (same name) gets the
    # unacknowledged entry again, and takes from it only what lies after its cursor.
    again = EventFeed(store, bus, group="learner", consumer="learner", store_every=3600)
    got, upto = again.read(after_seq=2)
    assert got["seq"].tolist() == [3, 4] and upto == 4 and again.store_reads == 0
    assert again.done(upto) == 1 and bus.pending("learner") == 0
    # A cursor past a redelivered entry takes nothing twice.
    write(store, bus, batch(1, 4))
    third = EventFeed(store, bus, group="learner", consumer="other")
    assert third.read(after_seq=5, block_ms=10)[0].empty


def test_a_bus_that_lost_everything_loses_no_event(store, bus):
    feed = EventFeed(store, bus, group="learner", consumer="learner", store_every=0)
    write(store, bus, batch(2))
    got, upto = feed.read(after_seq=0)
    feed.done(upto)
    bus.drop()  # a restart without persistence: the stream and its group are gone
    write(store, bus, batch(2, 2))  # published into a new stream, before the group exists
    write(store, bus, batch(2, 4))
    seen = []
    for _ in range(3):
        got, upto = feed.read(after_seq=upto, block_ms=10)
        seen += got["seq"].tolist()
        feed.done(upto)
    assert seen == [3, 4, 5, 6]


def test_events_of_erased_users_are_left_out_of_what_the_bus_gave(store, bus):
    feed = EventFeed(store, bus, drop=lambda f: (f["user_id"] == "u1").to_numpy())
    write(store, bus, batch(6))
    got, upto = feed.read(after_seq=0)
    assert upto == 6 and "u1" not in set(got["user_id"])
    assert got["seq"].tolist() == [1, 3, 4, 6]


def test_the_store_feed_reads_the_store():
    class Store:
        def read(self, after_seq, limit):
            from lifelongrec.data import make_events

            f = make_events(["u"], ["i"], [1])
            f["seq"] = np.array([after_seq + 1], dtype=np.int64)
            return f

    feed = StoreFeed(Store())
    got, upto = feed.read(after_seq=4)
    assert upto == 5 and got["seq"].tolist() == [5] and feed.done(5) == 0


def test_a_reader_far_behind_reads_the_store_page_after_page(store, bus):
    """Nothing on the bus, the store far ahead: each read takes a full page and the
    next one does not wait for the quiet-bus interval."""
    feed = EventFeed(store, bus, store_every=3600)
    write(store, bus, batch(25), publish=False)
    seen, upto = [], 0
    for _ in range(3):
        got, upto = feed.read(after_seq=upto, limit=10, block_ms=0)
        seen += got["seq"].tolist()
    assert seen == list(range(1, 26)) and upto == 25
