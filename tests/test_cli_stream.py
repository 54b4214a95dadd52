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
        (["--drift", "cusum"], "--drift"),
        (["--drift-delta", "2"], "--drift-delta"),
        (["--drift", "page-hinkley", "--drift-delta", "-1"], "--drift-delta"),
        (["--drift", "none", "--drift-delta", "0.01"], "--drift-delta"),
        (["--shift-at", "1.5"], "--shift-at"),
        (["--replay-share", "1.0"], "--replay-share"),
        (["--strategy", "lifelong", "--drift-epochs-factor", "0.5"], "--drift-epochs-factor"),
        (["--strategy", "lifelong", "--drift-replay-share", "-0.2"], "--drift-replay-share"),
        (["--strategy", "finetune", "--drift-replay-share", "0.2"], "--drift-replay-share"),
        (["--strategy", "lifelong", "--distill-weight", "1"], "--distill-weight"),  # itemknn
        (["--strategy", "lifelong", "--ewc-weight", "1"], "--ewc-weight"),
        (["--strategy", "static", "--distill-weight", "1"], "--distill-weight"),
        (["--strategy", "lifelong", "--distill-weight", "-1"], "--distill-weight"),
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


def test_shift_at_with_a_data_path_is_an_error(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,3.0,200\n")
    res = runner.invoke(app, ["stream", "--data", str(path), "--shift-at", "0.5"])
    assert res.exit_code == 2, res.output
    assert "--shift-at" in res.output and "synthetic" in res.output


def test_drift_detection_and_the_true_shift_in_json_text_and_plot(tmp_path):
    from lifelongrec.data import synthetic

    png = tmp_path / "drift.png"
    res = invoke(
        "--model", "itemknn", "--strategy", "all", "--windows", "4", "--shift-at", "0.5",
        "--drift", "page-hinkley", "--drift-delta", "0.01", "--replay-size", "40",
        "--replay-share", "0.4", "--drift-epochs-factor", "3", "--drift-replay-share", "0.1",
        "--replay-drift-power", "1.5", "--json", "--plot", str(png),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["shift_at"] == 0.5
    shift = synthetic(n_events=1500, seed=0, shift_at=0.5).meta["shift_timestamp"]
    for name, run in out["strategies"].items():
        drift = run["drift"]
        assert drift["detector"] == "page-hinkley" and drift["params"]["delta"] == 0.01
        assert drift["detector_params"]["delta"] == 0.01
        assert drift["true_shift_timestamp"] == shift, name
        assert drift["n_monitored"] == sum(w["n_events"] for w in run["windows"][1:])
        assert all("drift_detected" in w and "update_cpu_seconds" in w for w in run["windows"])
        assert run["total_update_cpu_seconds"] >= 0
    params = out["strategies"]["lifelong"]["strategy_params"]
    assert params["replay_share"] == 0.4 and params["drift_epochs_factor"] == 3.0
    assert params["drift_replay_share"] == 0.1 and params["distill_weight"] is None
    assert params["replay_drift_power"] == 1.5
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the text output says what was detected and where the true shift was
    text = invoke("--model", "itemknn", "--strategy", "finetune", "--windows", "4",
                  "--shift-at", "0.5").stdout  # fmt: skip
    assert "drift (adwin, hit):" in text and "true shift at 2024-" in text
    assert "update_cpu_s" in text


def test_drift_none_and_a_sequential_lifelong_with_distillation():
    res = invoke("--model", "popularity", "--strategy", "static", "--windows", "2",
                 "--drift", "none", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["drift"] is None and "drift_detected" not in out["windows"][1]
    # the weights reach a model that has them (checked before any data is read)
    from lifelongrec.evaluation import check_stream_arguments

    names = check_stream_arguments(
        "synthetic", "sequential", "all", 3, {}, 10, None,
        lifelong={"distill_weight": 1.0, "ewc_weight": 2.0},
    )  # fmt: skip
    assert names == ["static", "retrain", "finetune", "lifelong"]
