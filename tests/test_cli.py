"""The command line, end to end, through typer's runner (same code path as the console script)."""

import json

import pytest
from typer.testing import CliRunner

from lifelongrec.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_data_info_json_on_ml100k(shared_data):
    res = invoke("data", "info", str(shared_data / "ml-100k"), "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["n_events"] == 100_000
    assert info["n_users"] == 943
    assert info["n_items"] == 1682


def test_data_info_text_on_synthetic():
    res = invoke("data", "info", "synthetic", "--synthetic-events", "2000")
    assert res.exit_code == 0, res.output
    assert "n_events: 2000" in res.stdout


def test_evaluate_json_keys_follow_k():
    res = invoke(
        "evaluate",
        "--data",
        "synthetic",
        "--synthetic-events",
        "3000",
        "--model",
        "popularity",
        "--k",
        "5",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in (
        "precision@5",
        "recall@5",
        "f1@5",
        "hr@5",
        "ndcg@5",
        "mrr@5",
        "map@5",
        "coverage@5",
        "fit_seconds",
        "recommend_seconds",
    ):
        assert key in out, key
    assert 0.0 <= out["ndcg@5"] <= out["hr@5"] <= 1.0
    assert out["ranking"] == "full"
    assert not any(k.startswith("sampled") for k in out)


def test_evaluate_sampled_metrics_are_labelled():
    res = invoke(
        "evaluate",
        "--data",
        "synthetic",
        "--synthetic-events",
        "3000",
        "--model",
        "popularity",
        "--negatives",
        "50",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert "sampled50_ndcg@10" in out and "ndcg@10" in out
    assert out["ranking"] == "full+sampled-50"


def test_evaluate_table_and_params():
    res = invoke(
        "evaluate",
        "--data",
        "synthetic",
        "--synthetic-events",
        "3000",
        "--model",
        "als",
        "--param",
        "factors=8",
        "--param",
        "iterations=2",
    )
    assert res.exit_code == 0, res.output
    assert "ndcg@10" in res.stdout and "als" in res.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--model", "nosuchmodel"], "nosuchmodel"),
        (["--protocol", "random"], "random"),
        (["--param", "novalue"], "KEY=VALUE"),
        (["--model", "als", "--param", "factors=-3"], "factors"),
    ],
)
def test_evaluate_bad_arguments_exit_2_with_message(args, needle):
    res = runner.invoke(
        app, ["evaluate", "--data", "synthetic", "--synthetic-events", "2000", *args]
    )
    assert res.exit_code == 2
    assert needle in res.output


def test_bad_path_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["data", "info", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert "missing" in res.output


def test_models_lists_every_model():
    from lifelongrec.models import MODELS

    res = invoke("models")
    assert res.exit_code == 0
    for name in MODELS:
        assert name in res.stdout


def test_train_saves_a_model_that_loads_and_recommends(tmp_path):
    from lifelongrec.models import Recommender

    out = tmp_path / "model"
    res = invoke(
        "train",
        "--data",
        "synthetic",
        "--synthetic-events",
        "3000",
        "--model",
        "itemknn",
        "--out",
        str(out),
        "--json",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["out"] == str(out) and summary["n_events"] > 0
    model = Recommender.load(out)
    assert type(model).name == "itemknn"
    assert model.n_items == summary["n_items"]
    ids, _ = model.recommend(model.user_ids_[0], k=5)
    assert all(i is not None for i in ids)


def test_train_bad_model_param_is_exit_2(tmp_path):
    res = runner.invoke(
        app,
        [
            "train",
            "--data",
            "synthetic",
            "--synthetic-events",
            "2000",
            "--model",
            "ease",
            "--param",
            "l2=-1",
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 2
    assert "l2" in res.output
    assert not (tmp_path / "m").exists()


def test_evaluate_json_carries_the_sequential_training_record():
    # --no-dedupe keeps the view -> cart -> purchase funnel (the first event per pair is
    # always a view), so the event-type head has classes to learn
    args = ["evaluate", "--data", "synthetic", "--synthetic-events", "3000", "--no-dedupe"]
    args += ["--model", "sequential", "--json"]
    for kv in ("dim=16", "n_layers=1", "max_len=8", "epochs=3", "patience=3"):
        args += ["--param", kv]
    args += ["--param", "text_encoder=tfidf", "--param", "verbose=false"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert 1 <= len(out["history"]) <= 3
    assert all("train_seconds" in h and "val_ndcg@10" in h for h in out["history"])
    # the heads' validation metrics at the best epoch: next item always, the others here too
    assert set(out["head_metrics"]) >= {"next_item", "event_type", "category"}
    assert 0.0 <= out["head_metrics"]["event_type"]["accuracy"] <= 1.0
    # a classical model keeps no such record
    res = invoke("evaluate", "--data", "synthetic", "--synthetic-events", "3000", "--json")
    assert "history" not in json.loads(res.stdout)


def test_param_values_parse_as_literals_json_words_or_strings():
    from lifelongrec.cli import _parse_params

    got = _parse_params(["a=32", "b=1e-3", "c=false", "d=True", "e=null", "f=cosine", "g=(1,2)"])
    assert got == {"a": 32, "b": 1e-3, "c": False, "d": True, "e": None, "f": "cosine", "g": (1, 2)}
