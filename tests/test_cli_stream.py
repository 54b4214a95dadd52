"""``lifelongrec stream``: the prequential protocol on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lifelongrec.cli import app

runner = CliRunner()
SMALL = ["--data", "synthetic", "--synthetic-events", "1500"]


def invoke(*args):
    return runner.invoke(app, ["stream", *SMALL, *args], catch_exceptions=False)


def test_json_of_one_strategy():
    res = invoke("--model", "popularity", "--strategy", "finetune", "--windows", "3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["strategy"] == "finetune" and out["model"] == "popularity"
    assert out["n_windows"] == 3 and out["data"] == "synthetic" and out["k"] == 10
    assert len(out["windows"]) == 3
    for key in ("recall@10", "ndcg@10", "update_seconds", "start", "end", "n_events"):
        assert key in out["windows"][1]
    assert set(out["bwt"]) == {"recall@10", "ndcg@10", "windows"}
    assert out["total_update_seconds"] >= 0 and "mean" in out
    assert out["windows"][0]["recall@10"] is None  # window 0 is only learned


def test_all_strategies_with_a_plot(tmp_path):
    png = tmp_path / "plots" / "stream.png"
    res = invoke(
        "--model", "itemknn", "--strategy", "all", "--windows", "3", "--k", "5",
        "--replay-size", "50", "--json", "--plot", str(png),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert list(out["strategies"]) == ["static", "retrain", "finetune", "lifelong"]
    runs = out["strategies"]
    assert runs["lifelong"]["strategy_params"]["replay_size"] == 50
    # the same windows for every strategy, and the same first window figures
    spans = {tuple((w["start"], w["end"]) for w in r["windows"]) for r in runs.values()}
    assert len(spans) == 1
    firsts = {r["windows"][1]["ndcg@5"] for r in runs.values()}
    assert len(firsts) == 1  # every strategy serves window 1 from the same first fit
    assert runs["static"]["bwt"]["ndcg@5"] == 0.0
    # the plot is a real PNG image
    assert out["plot"] == str(png)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    img = imread(png)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400


def test_text_output_is_a_table():
    res = invoke("--model", "popularity", "--strategy", "all", "--windows", "3", "--k", "3")
    assert res.exit_code == 0, res.output
    text = res.stdout
    for word in ("strategy=static", "strategy=lifelong", "recall@3", "backward transfer"):
        assert word in text, word
    assert text.count("window  start") == 4  # one table per strategy
    assert "bwt_ndcg@3" in text  # and the comparison


def test_model_params_are_passed_on():
    res = invoke(
        "--model", "itemknn", "--param", "k_neighbors=5", "--strategy", "static",
        "--windows", "2", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["params"]["k_neighbors"] == 5


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--strategy", "sometimes"], "--strategy"),
        (["--windows", "1"], "--windows"),
        (["--k", "0"], "--k"),
        (["--model", "nosuchmodel"], "--model"),
        (["--param", "k_neighbours=5"], "--param"),
        (["--param", "novalue"], "KEY=VALUE"),
        (["--param", "k_neighbors=0"], "k_neighbors"),
        (["--replay-size", "0"], "--replay-size"),
        (["--plot", "out.svg"], "--plot"),
        (["--windows", "many"], "--windows"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(args, needle):
    res = runner.invoke(app, ["stream", *SMALL, "--model", "itemknn", *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output


def test_missing_data_and_too_many_windows_exit_2(tmp_path):
    res = runner.invoke(app, ["stream", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "missing" in res.output
    res = runner.invoke(app, ["stream", *SMALL, "--windows", "100000"])
    assert res.exit_code == 2 and "n_windows" in res.output
