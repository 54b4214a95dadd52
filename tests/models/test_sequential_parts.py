"""The sequential model's parts, one at a time: event encoder, history store, row
lifecycle, trainer, online buffer, saved-state formats; and how the estimator composes
them (one update path, hyperparameters never changed)."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from test_sequential import TINY

from lifelongrec import DataError, ParameterError
from lifelongrec.data import make_events
from lifelongrec.models import Recommender, SequentialRecommender
from lifelongrec.models.sequential import OOV_ROW, SequentialParams
from lifelongrec.models.sequential._events import TYPE_UNKNOWN, EventEncoder
from lifelongrec.models.sequential._histories import HistoryStore, merge_events
from lifelongrec.models.sequential._lifecycle import RowLifecycle
from lifelongrec.models.sequential._online import OnlineBuffer
from lifelongrec.models.sequential._state import FORMAT
from lifelongrec.models.sequential._trainer import Trainer
from lifelongrec.models.sequential._windows import update_holdout, update_windows
from lifelongrec.nn import gap_buckets

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "lifelongrec" / "models" / "sequential"


# ------------------------------------------------------------------ layout
def test_no_part_imports_the_estimator():
    for path in sorted(PACKAGE.glob("_*.py")):
        if path.name in ("_estimator.py", "__init__.py"):
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        assert "lifelongrec.models.sequential._estimator" not in names, path.name


def test_hyperparameters_are_the_typed_fields_and_keep_their_names():
    names = list(SequentialRecommender().get_params())
    assert names[:3] == ["dim", "n_layers", "n_heads"] and names[-1] == "verbose"
    assert len(names) == 55 and isinstance(SequentialRecommender(), SequentialParams)
    assert SequentialRecommender.__module__ == "lifelongrec.models.sequential"


# ------------------------------------------------------------ event encoder
def test_event_encoder_modes_and_one_encoding_for_frames_and_arrays():
    ev = make_events(["u", "u", "v"], ["a", "b", "a"], [3, 1, 2], ["buy", "view", "odd"])
    enc = EventEncoder.fit(ev.iloc[:2], like_threshold=4.0)
    assert enc.mode == "type" and enc.classes == ("buy", "view") and enc.n_type_ids == 4
    users, items = {"u": 0, "v": 1}, {"a": 0}
    frame = enc.encode_frame(ev, users, items)
    arrays = enc.encode(
        np.array([0, 0, 1]),
        np.array([0, -1, 0]),
        ev["timestamp"].to_numpy(),
        ev["event_type"].to_numpy(dtype=object),
        ev["value"].to_numpy(dtype=np.float64),
    )
    for key in frame:
        np.testing.assert_array_equal(frame[key], arrays[key])
    assert frame["item"].tolist() == [OOV_ROW, 1, 1]  # u's events in time order; b has no row
    assert frame["type"].tolist() == [3, 2, TYPE_UNKNOWN]  # view, buy, an unknown type
    np.testing.assert_array_equal(enc.target_types(frame["type"]), [1, 0, -1])
    rated = ev.assign(event_type="interaction", value=[5.0, 1.0, np.nan])
    like = EventEncoder.fit(rated, like_threshold=4.0)
    assert like.mode == "like" and like.encode_frame(rated, users, items)[
        "target_type"
    ].tolist() == [0, 1, -1]
    none = EventEncoder.fit(ev.assign(event_type="x"), like_threshold=4.0)
    assert none.mode == "none" and none.classes == () and none.n_type_ids == 3


# ------------------------------------------------------------ history store
def _events(users, items, ts):
    ev = {"user": np.array(users), "item": np.array(items), "ts": np.array(ts)}
    ev["type"] = np.full(len(users), 2)
    ev["target_type"] = np.zeros(len(users), np.int64)
    return ev


def test_history_store_append_equals_merge_and_forgets_items():
    stored = _events([0, 0, 1], [1, 2, 3], [10, 20, 5])
    stored["gap"] = gap_buckets(stored["user"], stored["ts"], 8)
    one = HistoryStore.from_events(stored, 3, 4)
    other = copy.deepcopy(one)
    new = _events([0], [4], [30])
    one.append(new, 8)  # the fast path: shift the row
    other.merge(new, 8)  # the general path
    for key in one.arrays:
        np.testing.assert_array_equal(one.arrays[key], other.arrays[key])
    assert one.read(np.array([0]))["item"].tolist() == [1, 2, 4]
    merged = merge_events(other.read(np.array([1])), _events([1], [2], [1]), 8)
    assert merged["item"].tolist() == [2, 3] and merged["is_new"].tolist() == [True, False]
    one.forget_items(np.array([1]))  # item row 1 is shifted 2 in sequences
    assert one.read(np.array([0]))["item"].tolist() == [1, OOV_ROW, 4]
    one.grow(5)
    one.clear(np.array([0]))
    assert one.n_users == 5 and not one.arrays["items"][0].any()


def test_history_store_grows_in_place_without_aliasing_copies():
    stored = _events([0, 1, 1], [1, 2, 3], [10, 20, 30])
    stored["gap"] = gap_buckets(stored["user"], stored["ts"], 8)
    one = HistoryStore.from_events(stored, 2, 4)
    before = {k: v.copy() for k, v in one.arrays.items()}
    for n in (3, 4, 9, 10, 40):  # within the room kept, and beyond it
        one.grow(n)
        assert one.n_users == n
        for key, m in one.arrays.items():
            np.testing.assert_array_equal(m[:2], before[key])
            assert not m[2:].any()
    one.merge(_events([5, 39], [4, 5], [40, 50]), 8)  # writes reach the grown rows
    assert one.read(np.array([5, 39]))["item"].tolist() == [4, 5]
    other = copy.deepcopy(one)  # a copy (a challenger's model) grows on its own
    other.merge(_events([39], [6], [60]), 8)
    other.grow(45)
    one.grow(45)
    one.merge(_events([42], [7], [70]), 8)
    assert one.read(np.array([39, 42]))["item"].tolist() == [5, 7]
    assert other.read(np.array([39, 42]))["item"].tolist() == [5, 6]


@pytest.mark.parametrize("encoder", ["sasrec", "hstu"])
def test_a_users_vector_is_the_same_whatever_the_batch_beside_it(world, encoder):
    """The encoder cuts the columns that are padding in every row of a batch (a short
    history alone, or a batch of them, costs less); what a user gets must not change."""
    model = SequentialRecommender(**{**TINY, "encoder": encoder, "epochs": 2}).fit(world)
    t = int(world.events["timestamp"].max())
    items = model.known_items()
    model.observe(make_events(["short", "short", "one"], items[:3], [t + 1, t + 2, t + 3]))
    full = model.known_users()[0]  # max_len stored events
    assert np.count_nonzero(model.user_state([full])["items"]) == TINY["max_len"]
    state = model.user_state(["short", "one", full])
    together = model.encode_state(state)
    for j, user in enumerate(["short", "one", full]):
        alone = model.encode_state(model.user_state([user]))
        np.testing.assert_allclose(alone[0], together[j], rtol=1e-5, atol=1e-6)
    pair = model.encode_state(model.user_state(["short", "one"]))  # cut to 2 columns
    np.testing.assert_allclose(pair, together[:2], rtol=1e-5, atol=1e-6)


def test_a_new_user_leaves_the_item_ids_alone_and_a_new_item_the_user_ids(world, fitted):
    """Only the side whose rows changed is read again from the lifecycle: at a million
    items, copying every item id for each new user's first event cost milliseconds."""
    model = copy.deepcopy(fitted)
    t = int(world.events["timestamp"].max()) + 1
    items, users = model.item_ids_, model.user_ids_
    model.observe(make_events(["newcomer"], [model.known_items()[0]], [t]))
    assert model.item_ids_ is items and "newcomer" in model.user_ids_.tolist()
    users = model.user_ids_
    model.observe(make_events(["newcomer"] * 2, ["brand-new"] * 2, [t + 1, t + 2]))
    assert model.user_ids_ is users and "brand-new" in model.item_ids_.tolist()
    assert model.recommend("newcomer", k=3)[0].size == 3


# ------------------------------------------------------------ row lifecycle
def test_row_lifecycle_returns_what_it_changed():
    ev = make_events(["u", "v", "v"], ["a", "b", "b"], [0, 10, 20])
    rows = RowLifecycle.start(ev, item_min_count=2)
    assert rows.item_ids().tolist() == ["b"] and rows.now == 20
    with pytest.raises(DataError, match="item_min_count"):
        RowLifecycle.start(ev.iloc[:2], item_min_count=2)
    changes = rows.observe(make_events(["w", "w"], ["c", "c"], [100, 101]), 50, 50)
    assert changes.expired_users.ids.tolist() == ["u", "v"] and changes.expiry_ran
    assert (
        changes.expired_items.ids.tolist() == ["b"] and changes.expired_items.n_pending_dropped == 1
    )
    assert changes.reused_items.tolist() == [0] and changes.admitted_users.tolist() == [0]
    assert rows.item_ids().tolist() == ["c"] and changes.changed
    record = changes.expiry_record()
    assert record == {"now": 101, "users": ["u", "v"], "items": ["b"], "n_pending_items_dropped": 1}
    rows.observe(make_events(["x"], ["c"], [101]), None, None)  # x: user row 1
    assert rows.touch(np.array([0]), np.array([0]), np.array([300]), 50, None) is None  # x is stale
    quiet = rows.touch(np.array([0]), np.array([0]), np.array([102]), None, None)
    assert quiet is not None and not quiet.changed and rows.now == 102
    with pytest.raises(ParameterError, match="'now'"):
        rows.expire(1.5, None, None)


# ------------------------------------------------------------ trainer and buffer
def test_trainer_resets_item_rows_and_round_trips_its_state(fitted):
    model = copy.deepcopy(fitted)
    trainer = model._trainer  # the part itself, as the estimator holds it (a parts test)
    assert isinstance(trainer, Trainer) and trainer.module is model.module_
    assert trainer.optimizer is model.optimizer_ and trainer.ewc is model.ewc_
    weight = model.module_.item_tower.id_emb.weight
    trainer.reset_items(np.array([0, 1]))
    assert not weight[1:3].any() and not trainer.optimizer.state[weight]["exp_avg"][1:3].any()
    twin = Trainer(model.module_, 0.01, 0.0, torch.device("cpu"))
    twin.set_state(trainer.get_state())
    for key, value in trainer.get_state().items():
        np.testing.assert_array_equal(value, twin.get_state()[key])


def test_online_buffer_keeps_context_once_and_forgets_users():
    buf = OnlineBuffer()
    store = HistoryStore.from_events(
        {**_events([0, 1], [1, 2], [1, 2]), "gap": np.ones(2, np.int64)}, 2, 3
    )
    buf.record(_events([0, 1], [3, 3], [5, 5]), store)
    buf.record(_events([0], [4], [6]), store)  # user 0's context is held already
    buf.forget(np.array([1]))
    assert buf.n == 2
    old, new = buf.take()
    assert old["user"].tolist() == [0] and new["item"].tolist() == [3, 4] and buf.n == 0


# ------------------------------------------------------------ one update path
def test_online_steps_train_on_partial_fits_windows(world, monkeypatch):
    """An online step builds the windows partial_fit would (its window length and
    context weight included), and trains them as one mini-batch."""
    model = SequentialRecommender(
        **{**TINY, "epochs": 1, "partial_fit_max_len": 3, "partial_fit_context_weight": 0.5}
    ).fit(world)
    seen = []
    real = Trainer.train

    def spy(self, windows, *args, **kwargs):
        seen.append((windows, kwargs.get("batch_size")))
        return real(self, windows, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train", spy)
    t = int(world.events["timestamp"].max())
    new = make_events(["auser0", "auser0", "buser1"], ["a1", "a2", "b3"], [t + 1, t + 2, t + 3])
    twin = copy.deepcopy(model)
    model.observe(new)
    model.online_step(1)
    twin.partial_fit(new, epochs=1)
    (w_online, batch), (w_update, _) = seen
    assert batch == len(w_online) and w_online.items.shape[1] == 3
    for field in ("items", "types", "gaps", "target_items", "target_weight"):
        np.testing.assert_array_equal(getattr(w_online, field), getattr(w_update, field))
    assert np.isclose(w_online.target_weight, 0.5).any()


def test_partial_fit_epochs_is_an_argument_and_the_hyperparameter_stays(world):
    model = SequentialRecommender(**{**TINY, "epochs": 1, "partial_fit_epochs": 1}).fit(world)
    t = int(world.events["timestamp"].max())
    model.partial_fit(make_events(["auser0"], ["a1"], [t + 1]), epochs=3)
    assert sum(h["update"] == 1 for h in model.history_) == 3 and model.partial_fit_epochs == 1
    with pytest.raises(ParameterError, match="'epochs'"):
        model.partial_fit(make_events(["auser0"], ["a1"], [t + 2]), epochs=-1)


def _merged(users, items, is_new):
    """Merged update events as the history store gives them (grouped by user, in order)."""
    n = len(users)
    return {
        "user": np.asarray(users, np.int64),
        "item": np.asarray(items, np.int64),
        "type": np.zeros(n, np.int64),
        "gap": np.ones(n, np.int64),
        "target_type": np.zeros(n, np.int64),
        "ts": np.arange(n, dtype=np.int64),
        "is_new": np.asarray(is_new, bool),
    }


def test_update_holdout_takes_each_users_last_new_event_with_context():
    # user 0: stored, stored, new, new -> its last new event; user 1: one new event and
    # nothing before it -> none; user 2: stored then new on an OOV item -> none; user 3:
    # only stored events -> none.
    merged = _merged(
        [0, 0, 0, 0, 1, 2, 2, 3, 3],
        [1, 2, 3, 4, 5, 1, 0, 2, 3],
        [0, 0, 1, 1, 1, 0, 1, 0, 0],
    )
    seen = sp.csr_matrix(np.ones((4, 6), np.float32))
    cats = sp.csr_matrix((6, 2), dtype=np.float32)
    rng = np.random.default_rng(0)
    holdout, val = update_holdout(merged, 4, seen, cats, 8, rng)
    assert np.flatnonzero(holdout).tolist() == [3]
    assert val.targets.tolist() == [3]  # item row 4 -> column 3
    assert val.items[0, -3:].tolist() == [1, 2, 3]  # what came before, right-aligned
    windows = update_windows(merged, 8, 1, 1.0, holdout)
    plain = update_windows(merged, 8, 1, 1.0)
    assert windows.target_weight.sum() == plain.target_weight.sum() - 1  # the held-out one
    # A sample of at most max_users users when more qualify, seeded.
    many = _merged(np.repeat(np.arange(50), 2), np.full(100, 2), np.tile([0, 1], 50))
    seen50 = sp.csr_matrix(np.ones((50, 6), np.float32))
    a, _ = update_holdout(many, 50, seen50, cats, 8, np.random.default_rng(1), max_users=10)
    b, _ = update_holdout(many, 50, seen50, cats, 8, np.random.default_rng(1), max_users=10)
    assert a.sum() == 10 and (a == b).all()


def test_updates_stop_on_their_held_out_slice(world):
    params = {**TINY, "epochs": 2, "partial_fit_epochs": 40, "partial_fit_patience": 1}
    model = SequentialRecommender(**params).fit(world)
    head, best = model.head_metrics_, model.best_epoch_
    t = int(world.events["timestamp"].max())
    users = [u for u in model.known_users() if u.startswith("a")][:8]
    new = make_events(
        np.repeat(users, 3), ["a2", "a3", "a4"] * len(users), t + 1 + np.arange(3 * len(users))
    )
    model.partial_fit(new)
    passes = [h for h in model.history_ if h["update"] == 1]
    assert 1 <= len(passes) <= 40 and all("val_ndcg@10" in h for h in passes)
    assert model.head_metrics_ == head and model.best_epoch_ == best  # still the fit's
    # The held-out events joined the histories: the user's stored events end with a4.
    row = model.user_index_[users[0]]
    assert model.user_histories_["items"][row][-1] == model.item_index_["a4"] + 1
    # Without patience every pass runs.
    plain = SequentialRecommender(**{**params, "partial_fit_patience": None}).fit(world)
    plain.partial_fit(new)
    assert sum(h["update"] == 1 for h in plain.history_) == 40


# ------------------------------------------------------------ saved state
def _as_format_1(path: Path) -> None:
    """Rewrite a saved model's state in format 1 (the flat keys of models saved before)."""
    meta = json.loads((path / "model.json").read_text())
    extra = meta["extra"]
    with np.load(path / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    renames = [
        ("module/", "w/"),
        ("trainer/optimizer/", "opt/"),
        ("trainer/ewc/fisher/", "ewcf/"),
        ("trainer/ewc/anchor/", "ewca/"),
        ("histories/", "hist/"),
        ("content/featurizer/", "feat/"),
        ("rows/users/", "uvocab/"),
        ("rows/items/", "ivocab/"),
        ("content/categories", "item_categories"),
    ]
    out = {}
    for key, value in arrays.items():
        for new, old in renames:
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        out[key] = value
    meta["sparse"] = ["item_categories" if k == "content/categories" else k for k in meta["sparse"]]
    attrs = extra["attributes"]
    meta["extra"] = {
        "event_mode": extra["events"]["mode"],
        "event_types": extra["events"]["classes"],
        "featurizer": extra["content"]["featurizer"],
        "content_dim": extra["content"]["dim"],
        "n_updates": attrs["n_updates_"],
        "head_metrics": attrs["head_metrics_"],
        "history": attrs["history_"],
        "best_epoch": attrs["best_epoch_"],
        "vocab": {
            "last_timestamp": extra["rows"]["now"],
            "expired": attrs["expired_"],
            "n_expired_users": attrs["n_expired_users_"],
            "n_expired_items": attrs["n_expired_items_"],
            "n_oov_events": attrs["n_oov_events_"],
        },
    }
    with open(path / "arrays.npz", "wb") as fh:
        np.savez(fh, **out)
    (path / "model.json").write_text(json.dumps(meta))


def test_saved_state_is_namespaced_and_models_saved_before_still_load(world, tmp_path):
    model = SequentialRecommender(**{**TINY, "epochs": 2, "ewc_weight": 1.0, "item_min_count": 2})
    model.fit(world)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["class"] == "lifelongrec.models.sequential.SequentialRecommender"
    assert meta["extra"]["format"] == FORMAT
    with np.load(tmp_path / "m" / "arrays.npz") as npz:
        prefixes = {k.split("/")[0] for k in npz.files if not k.startswith("_")}
    assert prefixes == {"module", "trainer", "histories", "rows", "content"}
    _as_format_1(tmp_path / "m")
    old = Recommender.load(tmp_path / "m")
    users = ["auser0", "buser1"]
    np.testing.assert_array_equal(old.score_items(users), model.score_items(users))
    assert old.expired_ == model.expired_ and old.history_ == model.history_
    t = int(world.events["timestamp"].max())
    update = make_events(["auser0", "buser1"], ["a3", "b4"], [t + 1, t + 2])
    model.partial_fit(update)
    old.partial_fit(update)  # the optimiser and EWC state came back too
    np.testing.assert_array_equal(old.score_items(users), model.score_items(users))


def test_a_newer_state_format_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["extra"]["format"] = FORMAT + 1
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format 3 is not supported"):
        Recommender.load(tmp_path / "m")


def test_state_is_made_in_fit(world):
    model = SequentialRecommender(**{**TINY, "epochs": 1})
    assert not hasattr(model, "n_online_steps_") and model.n_online_pending == 0
    model.fit(world)
    assert model.n_online_steps_ == 0 and model.n_replayed_ == 0 and model.best_epoch_ is None
    assert isinstance(pd.DataFrame(model.history_), pd.DataFrame)
