"""IdVocabulary: id <-> row without hashing, admission threshold, expiry, row reuse.

The random-stream test drives the vocabulary and a plain per-occurrence reference model
of the documented semantics side by side and compares every piece of state.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import lifelongrec.features as features
from lifelongrec import DataError, ParameterError
from lifelongrec.features import IdVocabulary
from lifelongrec.features._vocab import NEVER


class Reference:
    """The semantics, one occurrence at a time, with lists and dicts only."""

    def __init__(self, min_count):
        self.min_count = min_count
        self.row_id: list = []  # id or None (free)
        self.last: list = []
        self.count: list = []
        self.pending: dict = {}

    def index(self):
        return {i: r for r, i in enumerate(self.row_id) if i is not None}

    def observe(self, ids, ts, before=None):
        index = self.index()
        first_order = []
        for i, t in zip(ids, ts, strict=True):
            if i in index:
                r = index[i]
                self.last[r] = max(self.last[r], t)
                self.count[r] += 1
            else:
                c, last = self.pending.get(i, (0, t))
                self.pending[i] = (c + 1, max(last, t))
                if i not in first_order:
                    first_order.append(i)
        expired = self.expire(before, exempt=set(ids)) if before is not None else ([], [], 0)
        admitted, rows = [], []
        for i in first_order:
            c, last = self.pending[i]
            if c >= self.min_count:
                del self.pending[i]
                admitted.append(i)
                rows.append(self.assign_row(i, c, last))
        return admitted, rows, expired

    def assign_row(self, i, c, last):
        free = [r for r, x in enumerate(self.row_id) if x is None]
        if free:
            r = free[0]
        else:
            r = len(self.row_id)
            self.row_id.append(None)
            self.last.append(None)
            self.count.append(None)
        self.row_id[r], self.last[r], self.count[r] = i, last, c
        return r

    def expire(self, before, exempt=frozenset()):
        rows, ids = [], []
        for r, i in enumerate(self.row_id):
            if i is not None and self.last[r] < before and i not in exempt:
                rows.append(r)
                ids.append(i)
                self.row_id[r], self.last[r], self.count[r] = None, None, 0
        drop = [i for i, (_, t) in self.pending.items() if t < before and i not in exempt]
        for i in drop:
            del self.pending[i]
        return rows, ids, len(drop)


def assert_same(vocab: IdVocabulary, ref: Reference):
    assert vocab.ids.tolist() == ref.row_id
    active = [i is not None for i in ref.row_id]
    assert vocab.active.tolist() == active
    assert vocab.last_seen.tolist() == [NEVER if x is None else x for x in ref.last]
    assert vocab.counts.tolist() == [0 if x is None else x for x in ref.count]
    assert vocab.pending == ref.pending
    assert vocab.free_rows.tolist() == [r for r, a in enumerate(active) if not a]
    assert vocab.n_rows == len(ref.row_id)
    assert vocab.n_active == sum(active) == len(vocab)
    assert vocab.n_free == vocab.n_rows - vocab.n_active
    assert vocab.n_pending == len(ref.pending)
    assert vocab.index == ref.index()


def test_public_names():
    assert {"IdVocabulary", "Expired", "VocabularyUpdate"} <= set(features.__all__)


@pytest.mark.parametrize("seed", range(6))
def test_random_stream_matches_reference(seed):
    rng = np.random.default_rng(seed)
    min_count = int(rng.integers(1, 4))
    vocab, ref = IdVocabulary(min_count), Reference(min_count)
    t = 0
    for _ in range(60):
        n = int(rng.integers(0, 12))
        ids = [f"x{j}" for j in rng.integers(0, 25, n)]
        ts = (t + rng.integers(0, 5, n)).tolist()  # not sorted within a batch
        t += 3
        before = int(t - rng.integers(5, 25)) if rng.random() < 0.5 else None
        if rng.random() < 0.15:  # an expiry on its own
            got = vocab.expire(before if before is not None else t - 10)
            want = ref.expire(before if before is not None else t - 10)
            assert got.rows.tolist() == want[0] and got.ids.tolist() == want[1]
            assert got.n_pending_dropped == want[2]
        else:
            up = vocab.observe(ids, ts, expire_before=before)
            admitted, rows, (e_rows, e_ids, e_drop) = ref.observe(ids, ts, before)
            assert up.admitted_ids.tolist() == admitted
            assert up.admitted_rows.tolist() == rows
            assert up.expired.rows.tolist() == e_rows and up.expired.ids.tolist() == e_ids
            assert up.expired.n_pending_dropped == e_drop
        assert_same(vocab, ref)
        probe = [f"x{j}" for j in range(25)]
        index = ref.index()
        assert vocab.rows(probe).tolist() == [index.get(i, -1) for i in probe]


def test_admission_threshold_counts_across_batches():
    v = IdVocabulary(min_count=3)
    assert v.observe(["a", "a", "b"], [1, 2, 3]).admitted_ids.tolist() == []
    assert v.pending == {"a": (2, 2), "b": (1, 3)}
    up = v.observe(["b", "a"], [4, 5])
    assert up.admitted_ids.tolist() == ["a"] and up.admitted_rows.tolist() == [0]
    assert v.counts[0] == 3 and v.last_seen[0] == 5 and v.pending == {"b": (2, 4)}
    assert "a" in v and "b" not in v and v.rows(["a", "b", "zz"]).tolist() == [0, -1, -1]


def test_freed_rows_are_reused_lowest_first_then_the_table_grows():
    v = IdVocabulary()
    v.observe(list("abcde"), [1, 2, 3, 4, 5])
    gone = v.expire(before=4)  # a, b, c
    assert gone.rows.tolist() == [0, 1, 2] and gone.ids.tolist() == ["a", "b", "c"]
    assert v.ids.tolist() == [None, None, None, "d", "e"] and v.n_free == 3
    up = v.observe(["z", "y", "x", "w"], [9, 9, 9, 9])
    assert up.admitted_rows.tolist() == [0, 1, 2, 5]
    assert up.reused_rows.tolist() == [0, 1, 2] and up.n_rows_before == 5
    assert v.n_rows == 6 and v.n_free == 0
    # an expired id seen again is admitted again as a new id (count starts over)
    up = v.observe(["a"], [10], expire_before=9)
    assert up.expired.ids.tolist() == ["d", "e"]
    assert up.admitted_rows.tolist() == [3] and v.counts[3] == 1


def test_ids_in_the_batch_are_alive_even_when_their_events_are_old():
    v = IdVocabulary(min_count=2)
    v.observe(["a", "a", "p"], [1, 1, 1])  # a has a row, p is pending
    up = v.observe(["a", "p"], [2, 2], expire_before=100)
    assert up.expired.rows.tolist() == [] and up.expired.n_pending_dropped == 0
    assert v.rows(["a", "p"]).tolist() == [0, 1]
    assert v.expire(before=100).ids.tolist() == ["a", "p"]


def test_pending_counts_expire_so_they_stay_bounded():
    v = IdVocabulary(min_count=2)
    for t in range(200):  # a stream of one-off ids
        v.observe([f"once{t}"], [t], expire_before=t - 10)
        assert v.n_pending <= 11
    assert v.n_rows == 0


def test_admit_forces_rows_and_keeps_known_ones():
    v = IdVocabulary(min_count=5)
    v.observe(["a", "a", "k", "k", "k", "k", "k"], [7, 8, 1, 1, 1, 1, 1])
    rows = v.admit(["a", "new", "k", "new"], timestamp=3)
    assert rows.tolist() == [1, 2, 0, 2]
    assert v.counts.tolist() == [5, 2, 0] and v.last_seen.tolist() == [1, 8, 3]
    assert v.n_pending == 0


def test_views_are_read_only():
    v = IdVocabulary()
    v.observe(["a"], [1])
    for view in (v.ids, v.last_seen, v.counts):
        with pytest.raises(ValueError):
            view[0] = view[0]


def test_state_round_trips_through_npz_and_keeps_behaving_the_same():
    rng = np.random.default_rng(3)
    v = IdVocabulary(min_count=2)
    for t in range(20):
        v.observe([f"i{j}" for j in rng.integers(0, 15, 6)], [t] * 6, expire_before=t - 4)
    assert v.n_free and v.n_pending  # the interesting parts are there
    buf = io.BytesIO()
    np.savez(buf, **v.get_state())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        back = IdVocabulary.from_state({k: npz[k] for k in npz.files})
    assert back.min_count == 2
    for attr in ("ids", "last_seen", "counts", "active", "free_rows"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(v, attr))
    assert back.pending == v.pending and back.index == v.index
    batch = [f"i{j}" for j in range(15)] + ["fresh", "fresh"]
    a = v.observe(batch, [30] * len(batch), expire_before=25)
    b = back.observe(batch, [30] * len(batch), expire_before=25)
    assert a.admitted_rows.tolist() == b.admitted_rows.tolist()
    np.testing.assert_array_equal(back.ids, v.ids)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None])
def test_bad_min_count(value):
    with pytest.raises(ParameterError, match="'min_count' must be an integer >= 1"):
        IdVocabulary(value)


def test_bad_inputs_are_named():
    v = IdVocabulary()
    with pytest.raises(ParameterError, match="'ids' must be a 1-d sequence"):
        v.observe("abc", [1, 2, 3])
    with pytest.raises(ParameterError, match="'ids' must be a 1-d sequence"):
        v.rows([["a"]])
    with pytest.raises(DataError, match=r"an id is not a string.*7 at position 1"):
        v.observe(["a", 7], [1, 2])
    with pytest.raises(DataError, match=r"not a string.*None at position 0"):
        v.admit([None], 1)
    with pytest.raises(ParameterError, match="'timestamps' must be a 1-d array of 2"):
        v.observe(["a", "b"], [1])
    with pytest.raises(DataError, match="timestamps are not integers"):
        v.observe(["a"], [1.5])
    with pytest.raises(DataError, match="timestamps are not integers"):
        v.observe(["a"], ["soon"])
    with pytest.raises(DataError, match="int64 minimum"):
        v.observe(["a"], [NEVER])
    for bad in ("now", 1.5, float("nan"), None, True):
        with pytest.raises(ParameterError, match="'before' must be an integer timestamp"):
            v.expire(bad)
    with pytest.raises(ParameterError, match="'expire_before' must be an integer timestamp"):
        v.observe(["a"], [1], expire_before="yesterday")
    with pytest.raises(ParameterError, match="'timestamp' must be an integer timestamp"):
        v.admit(["a"], 2.5)
    assert v.n_rows == 0 and v.n_pending == 0  # nothing half-done
    v.observe(["a"], [1.0])  # integral floats are whole seconds
    assert v.last_seen.tolist() == [1] and v.expire(2.0).ids.tolist() == ["a"]


def _state():
    v = IdVocabulary(min_count=2)
    v.observe(["a", "a", "b", "b", "c"], [1, 1, 2, 2, 3])
    v.expire(2)
    return v.get_state()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("free"), "missing arrays"),
        (lambda s: s.update(counts=s["counts"][:1]), "length differs from ids"),
        (lambda s: s.update(free=np.asarray([1], np.int64)), "free rows are not the inactive"),
        (lambda s: s.update(last_seen=np.asarray([NEVER, NEVER])), "last_seen does not match"),
        (lambda s: s.update(ids=np.asarray(["b", "b"]), active=np.asarray([True, True]),
                            free=np.zeros(0, np.int64), last_seen=np.asarray([1, 2])),
         "an id holds two rows"),
        (lambda s: s.update(pending_counts=np.zeros(3, np.int64)), "pending arrays differ"),
        (lambda s: s.update(pending_ids=np.asarray(["b"])), "both pending and active"),
    ],
)  # fmt: skip
def test_inconsistent_state_is_rejected(edit, match):
    state = _state()
    assert IdVocabulary.from_state(dict(state)).n_pending == 1
    edit(state)
    with pytest.raises(DataError, match=match):
        IdVocabulary.from_state(state)


def test_forget_frees_given_ids_whatever_their_age():
    v = IdVocabulary(min_count=2)
    v.observe(["a", "b", "c", "c", "p"], [1, 1, 1, 1, 5])  # a, b seen once: pending
    v.observe(["a", "b"], [2, 2])
    assert sorted(v.index) == ["a", "b", "c"] and "p" in v.pending
    gone = v.forget(["b", "p", "unknown"])
    assert gone.ids.tolist() == ["b"] and gone.n_pending_dropped == 1
    assert "b" not in v and "p" not in v.pending and len(v) == 2
    assert v.observe(["d", "d"], [3, 3]).admitted_rows.tolist() == gone.rows.tolist()
