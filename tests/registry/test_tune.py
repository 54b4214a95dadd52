"""tune(): hyperparameter search on recent data (Optuna, optional), and its errors."""

from __future__ import annotations

import re
import sys

import pytest

from lifelongrec import DataError, ParameterError
from lifelongrec.evaluation import evaluate_window
from lifelongrec.models import EASE, ItemKNN
from lifelongrec.registry import DEFAULT_SPACES, split_freshest, tune


def test_public_names_exist():
    import lifelongrec.registry as registry

    for name in registry.__all__:
        assert hasattr(registry, name), name


def test_three_trials_on_recent_data(stream):
    pytest.importorskip("optuna")
    space = {"l2": (1.0, 1000.0, "log")}
    out = tune("ease", stream, space, n_trials=3, recent=600, holdout_share=0.2, seed=3)
    assert out["model"] == "ease" and out["metric"] == "ndcg@10"
    assert len(out["trials"]) == 4  # the starting point, then 3 trials
    assert out["trials"][0]["params"] == {} and out["default_params"] == EASE().get_params()
    assert all(1.0 <= t["params"]["l2"] <= 1000.0 for t in out["trials"][1:])
    assert out["best_value"] == max(t["value"] for t in out["trials"])
    assert out["improved"] == (out["best_value"] > out["default_value"])
    assert (out["n_train"], out["n_validation"]) == (480, 120)
    # an independent evaluation of the winner on the same split gives the same figure
    latest = stream.events.iloc[-600:]
    older, fresh = split_freshest(latest, 0.2)
    model = EASE(**out["best_params"]).fit(stream.with_events(older))
    assert evaluate_window(model, fresh, latest, 10)["ndcg@10"] == pytest.approx(out["best_value"])
    # seeded: the same settings are tried again
    again = tune("ease", stream, space, n_trials=3, recent=600, holdout_share=0.2, seed=3)
    assert [t["params"] for t in again["trials"]] == [t["params"] for t in out["trials"]]


def test_default_space_and_a_template_model(stream):
    pytest.importorskip("optuna")
    template = ItemKNN(k_neighbors=20)
    out = tune(template, stream.events, n_trials=2, metric="recall@5", seed=0)
    assert out["default_params"]["k_neighbors"] == 20
    assert set(out["trials"][1]["params"]) == set(DEFAULT_SPACES["itemknn"])
    assert isinstance(out["trials"][1]["params"]["k_neighbors"], int)
    assert not template.is_fitted


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"model": "nope"}, "model"),
        ({"model": 3}, "model"),
        ({"space": {"alpha": (1, 2)}}, "space"),
        ({"space": {}}, "space"),
        ({"space": {"l2": (5.0, 1.0)}}, "space['l2']"),
        ({"space": {"l2": (0.0, 1.0, "log")}}, "space['l2']"),
        ({"space": {"l2": (1.0, 2.0, "exp")}}, "space['l2']"),
        ({"space": {"l2": []}}, "space['l2']"),
        ({"space": {"l2": 5.0}}, "space['l2']"),
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": True}, "n_trials"),
        ({"metric": "auc"}, "metric"),
        ({"recent": 1}, "recent"),
        ({"recent": True}, "recent"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"seed": -1}, "seed"),
        ({"seed": None}, "seed"),
        ({"seed": False}, "seed"),
        ({"holdout_share": 1.5}, "holdout_share"),
        ({"model": "sequential", "space": None}, "space"),
    ],
)
def test_bad_arguments(stream, kwargs, name):
    pytest.importorskip("optuna")
    args = {"model": "ease", "space": {"l2": (1.0, 10.0)}, "n_trials": 1, **kwargs}
    with pytest.raises(ParameterError, match=re.escape(repr(name))):
        tune(args.pop("model"), stream, args.pop("space"), **args)


def test_bad_data():
    pytest.importorskip("optuna")
    with pytest.raises(DataError):
        tune("ease", [("u", "i", 1)], n_trials=1)


def test_without_optuna_the_error_says_how_to_install(stream, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now fails
    with pytest.raises(ImportError, match=r"lifelongrec\[tune\]"):
        tune("ease", stream, n_trials=1)
