"""``ema_decay`` (a fit keeps the moving average of its weights) and ``lr_plateau`` (the
learning rate halves when validation stalls)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifelongrec.models import SequentialRecommender

# batch_size above the windows' count: one optimiser step per epoch
TINY = {"dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 6, "lr": 0.05, "batch_size": 512}
TINY |= {"text_encoder": None, "verbose": False, "validation": False, "dropout": 0.0}


def _world(n_users: int = 40, length: int = 6, n_items: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows, t = [], 0
    for u in range(n_users):
        for item in rng.choice(n_items, length, replace=False):
            t += 60
            rows.append((f"u{u}", f"i{item}", t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _weights(model: SequentialRecommender, where: Path) -> dict[str, np.ndarray]:
    """The saved module's floating-point parameters and buffers (the public format)."""
    folder = model.save(where)
    out = {}
    for npz in folder.rglob("*.npz"):
        with np.load(npz) as arrays:
            for key in arrays.files:
                if key.startswith("module/") and arrays[key].dtype.kind == "f":
                    out[key] = arrays[key].astype(np.float64)
    assert out, "no module weights found in the saved model"
    return out


def test_the_fit_ends_with_the_average_of_its_steps(tmp_path):
    events, decay = _world(), 0.6
    one = _weights(SequentialRecommender(**TINY, epochs=1).fit(events), tmp_path / "a")
    two = _weights(SequentialRecommender(**TINY, epochs=2).fit(events), tmp_path / "b")
    three = _weights(SequentialRecommender(**TINY, epochs=3).fit(events), tmp_path / "c")
    averaged = SequentialRecommender(**TINY, epochs=3, ema_decay=decay).fit(events)
    ema = _weights(averaged, tmp_path / "d")
    moved = 0
    for key, w1 in one.items():
        # the first step's weights, then two moving-average updates
        expected = decay * (decay * w1 + (1 - decay) * two[key]) + (1 - decay) * three[key]
        np.testing.assert_allclose(ema[key], expected, rtol=1e-4, atol=1e-5, err_msg=key)
        moved += not np.allclose(three[key], expected, rtol=1e-4, atol=1e-5)
    assert moved > 0  # the average is not simply the last step's weights


def test_without_averaging_nothing_changes(tmp_path):
    events = _world()
    plain = SequentialRecommender(**TINY, epochs=2).fit(events)
    off = SequentialRecommender(**TINY, epochs=2, ema_decay=0.0).fit(events)
    a, b = _weights(plain, tmp_path / "a"), _weights(off, tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_early_stopping_judges_and_keeps_the_average():
    events = _world(n_users=60)
    params = {**TINY, "validation": True, "validation_events": 1, "epochs": 6, "patience": 6}
    params["batch_size"] = 16
    model = SequentialRecommender(**params, ema_decay=0.9).fit(events)
    checks = [h["val_ndcg@10"] for h in model.history_]
    assert len(checks) == 6
    assert model.best_epoch_ == int(np.argmax(checks))
    assert model.head_metrics_["next_item"]["ndcg@10"] == pytest.approx(max(checks))
    # what was judged is the average, not the weights of each epoch's last step
    plain = SequentialRecommender(**params).fit(events)
    assert [h["val_ndcg@10"] for h in plain.history_] != pytest.approx(checks)


def test_updates_do_not_average(tmp_path):
    events = _world()
    first, later = events.iloc[: len(events) // 2], events.iloc[len(events) // 2 :]
    # three passes of one step each: an averaged update would differ from a plain one
    params = {**TINY, "epochs": 2, "partial_fit_epochs": 3, "partial_fit_shrink": 1.0}
    fitted = SequentialRecommender(**params, ema_decay=0.6).fit(first)
    path = fitted.save(tmp_path / "fitted")
    kept = SequentialRecommender.load(path)
    plain = SequentialRecommender.load(path)
    plain.ema_decay = 0.0
    assert kept.get_params()["ema_decay"] == 0.6
    kept.partial_fit(later)
    plain.partial_fit(later)
    a, b = _weights(kept, tmp_path / "kept"), _weights(plain, tmp_path / "plain")
    before = _weights(fitted, tmp_path / "before")
    assert any(not np.allclose(before[k], a[k]) for k in before)  # the update trained
    for key in a:  # and trained the weights as they are, not an average of its steps
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2, "0.9"])
def test_a_bad_ema_decay_is_refused_naming_it(bad):
    with pytest.raises((ValueError, TypeError), match="ema_decay"):
        SequentialRecommender(ema_decay=bad).fit(_world(n_users=4))


# ------------------------------------------------------------------ lr_plateau
def _plateau_rule(checks: list[float], wait: int, lr: float) -> list[float]:
    """The learning rate after each check: halved after ``wait`` checks without a
    better one since the best (or since the last halving)."""
    best, bad, out = -np.inf, 0, []
    for value in checks:
        best, bad = (value, 0) if value > best else (best, bad + 1)
        if bad >= wait:
            lr, bad = lr / 2, 0
        out.append(lr)
    return out


@pytest.mark.parametrize("wait", [1, 2])
def test_the_learning_rate_halves_on_a_plateau(wait):
    events = _world(n_users=60)
    params = {**TINY, "validation": True, "validation_events": 1, "epochs": 10, "patience": 10}
    params["batch_size"] = 16
    model = SequentialRecommender(**params, lr_plateau=wait).fit(events)
    checks = [h["val_ndcg@10"] for h in model.history_]
    lrs = [h["lr"] for h in model.history_]
    assert lrs == pytest.approx(_plateau_rule(checks, wait, params["lr"]))
    assert min(lrs) < params["lr"]  # this run did reach a plateau
    plain = SequentialRecommender(**params).fit(events)
    assert all("lr" not in h for h in plain.history_)
    first = next(i for i, lr in enumerate(lrs) if lr < params["lr"])  # the first halving
    plain_checks = [h["val_ndcg@10"] for h in plain.history_]
    # identical up to the check that first halved, different after it
    assert plain_checks[: first + 1] == pytest.approx(checks[: first + 1])
    assert plain_checks[first + 1 :] != pytest.approx(checks[first + 1 :])
