"""``lifelongrec tune``: a search on validation events from the command line, and its errors."""

import json
import shlex

import pytest
from typer.testing import CliRunner

from lifelongrec.cli import app
from lifelongrec.evaluation import parse_params

runner = CliRunner()
SMALL = ["--data", "synthetic", "--synthetic-events", "3000"]


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_tune_json_names_the_winner_and_its_test_command():
    pytest.importorskip("optuna")
    space = '{"k_neighbors": [5, 50, 200]}'
    res = invoke(
        "tune",
        *SMALL,
        "--model",
        "itemknn",
        "--trials",
        "3",
        "--space",
        space,
        "--param",
        "shrink=0.0",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["protocol"] == "loo" and out["model"] == "itemknn"
    assert out["space"] == {"k_neighbors": [5, 50, 200]}
    assert len(out["trials"]) == 4 and out["default_params"]["shrink"] == 0.0
    assert out["best_value"] == max(t["value"] for t in out["trials"])
    assert out["n_left_out"] > 0 and out["n_validation"] > out["n_left_out"]  # 3 per user
    changed = {k: v for k, v in out["best_params"].items() if out["default_params"][k] != v}
    assert out["changed"] == changed
    assert out["evaluate"].startswith(
        "lifelongrec evaluate --data synthetic --model itemknn --synthetic-events 3000"
    )  # the same data as the search
    assert "--param shrink=0.0" in out["evaluate"]
    # the command gives back every changed value as it was
    words = shlex.split(out["evaluate"])
    given = parse_params([words[i + 1] for i, w in enumerate(words) if w == "--param"])
    assert given == {"shrink": 0.0, **changed}


@pytest.mark.parametrize("value", [None, "hstu", "null", "32", "a b", 3, 0.5, True, (1, 2)])
def test_a_winning_value_survives_the_evaluate_command(value):
    from lifelongrec.registry._tune import _param_text

    assert parse_params(shlex.split(shlex.quote(f"k={_param_text(value)}"))) == {"k": value}


def test_tune_text_report():
    pytest.importorskip("optuna")
    res = invoke("tune", *SMALL, "--model", "ease", "--trials", "2", "--valid-events", "1")
    assert res.exit_code == 0, res.output
    assert "ease on synthetic (loo:" in res.stdout
    assert "starting point: validation ndcg@10" in res.stdout
    assert res.stdout.count(" s  l2=") == 2  # one line per trial


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "--model"),
        (["--model", "itemknn", "--space", "{"], "--space"),
        (["--model", "itemknn", "--space", '{"alpha": [1, 2]}'], "hyperparameters of itemknn"),
        (["--model", "itemknn", "--protocol", "temporal"], "protocol"),
        (["--model", "itemknn", "--valid-events", "0"], "n_valid"),
        (["--model", "itemknn", "--trials", "0"], "n_trials"),
        (["--model", "itemknn", "--param", "k_neighbors=-3"], "k_neighbors"),
        (["--model", "hybrid"], "a search space for hybrid"),
    ],
)
def test_tune_errors_exit_2_with_a_message(args, message):
    pytest.importorskip("optuna")
    res = invoke("tune", *SMALL, *args)
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and message in res.output


def test_the_evaluate_command_reads_the_data_as_the_search_did():
    pytest.importorskip("optuna")
    args = ["--model", "popularity", "--trials", "1", "--seed", "2", "--no-dedupe", "--json"]
    res = invoke("tune", *SMALL, *args)
    assert res.exit_code == 0, res.output
    words = shlex.split(json.loads(res.stdout)["evaluate"])
    assert words[words.index("--seed") + 1] == "2" and "--no-dedupe" in words
    assert words[words.index("--synthetic-events") + 1] == "3000"
