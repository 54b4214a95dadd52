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
    assert all(
        "train_seconds" in h and "val_ndcg@10" in h and h["val_seconds"] > 0 for h in out["history"]
    )
    # the heads' validation metrics at the best epoch: next item always, the others here too
    assert set(out["head_metrics"]) >= {"next_item", "event_type", "category"}
    assert 0.0 <= out["head_metrics"]["event_type"]["accuracy"] <= 1.0
    # a classical model keeps no such record
    res = invoke("evaluate", "--data", "synthetic", "--synthetic-events", "3000", "--json")
    assert "history" not in json.loads(res.stdout)


def test_param_values_parse_as_literals_json_words_or_strings():
    from lifelongrec.evaluation import parse_params

    got = parse_params(["a=32", "b=1e-3", "c=false", "d=True", "e=null", "f=cosine", "g=(1,2)"])
    assert got == {"a": 32, "b": 1e-3, "c": False, "d": True, "e": None, "f": "cosine", "g": (1, 2)}


# ------------------------------------------------------------ --columns, --timestamp-unit
def events_csv(path, header="userId,movieId,rating,timestamp", scale=1, n_users=12, n_items=6):
    """A small ratings table: every user rates every item, one minute apart."""
    lines = [header]
    t = 1_500_000_000
    for u in range(n_users):
        for i in range(n_items):
            if (u + i) % 3:  # not every pair, so models have something to rank
                lines.append(f"u{u},i{i},{1 + (u * i) % 5},{t * scale}")
                t += 60
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines) - 1


def test_data_info_reports_the_recognised_columns(tmp_path):
    path, n = events_csv(tmp_path / "events.csv")
    res = invoke("data", "info", str(path), "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["format"] == "table" and info["n_events"] == n
    assert info["time"]["min"] == 1_500_000_000
    assert info["value"]["min"] == 1.0 and info["value"]["max"] == 5.0
    assert info["columns"] == {
        "user_id": "userId",
        "item_id": "movieId",
        "timestamp": "timestamp",
        "value": "rating",
    }
    assert "columns recognised in the header: user_id <- userId, item_id <- movieId" in res.stderr


def test_columns_option_resolves_an_ambiguous_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,user_id,sku,ts,score\na,A,x,100,5\nb,B,y,200,3\n")
    res = runner.invoke(app, ["data", "info", str(path)])
    assert res.exit_code == 2
    assert "several columns could hold the user id: got ['user', 'user_id']" in res.output
    assert "--columns user_id=user" in res.output
    res = invoke("data", "info", str(path), "--json", "--columns", "user = user_id, rating=score")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["columns"] == {
        "user_id": "user_id",
        "item_id": "sku",
        "timestamp": "ts",
        "value": "score",
    }
    assert info["n_users"] == 2 and info["time"] == {**info["time"], "min": 100, "max": 200}
    assert info["value"]["mean"] == 4.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("user_id", "got 'user_id'"),
        ("usr=a", "got 'usr=a'"),
        ("user=a,user_id=b", "user_id is given twice"),
        ("=a", "got '=a'"),
        ("user=", "got 'user='"),
    ],
)
def test_bad_columns_option_exits_2_naming_the_entry_and_roles(tmp_path, text, needle):
    path, _ = events_csv(tmp_path / "events.csv")
    res = runner.invoke(app, ["data", "info", str(path), "--columns", text])
    assert res.exit_code == 2
    assert "--columns" in res.output and needle in res.output
    if "twice" not in needle:
        assert "user_id (user), item_id (item), timestamp (time)" in res.output


def test_columns_and_unit_options_are_refused_where_they_cannot_apply(tmp_path):
    res = runner.invoke(app, ["data", "info", "synthetic", "--columns", "user=a"])
    assert res.exit_code == 2 and "synthetic world" in res.output
    shifted = ["stream", "--data", "synthetic", "--synthetic-events", "500", "--shift-at", "0.5"]
    res = runner.invoke(app, [*shifted, "--timestamp-unit", "ms"])
    assert res.exit_code == 2 and "'--timestamp-unit' must be left out" in res.output
    root = tmp_path / "ml"
    root.mkdir()
    (root / "u.data").write_text("1\t10\t4\t881250949\n")
    res = runner.invoke(app, ["data", "info", str(root), "--columns", "user=a"])
    assert res.exit_code == 2
    assert "'--columns' must be left out for" in res.output and "movielens-100k" in res.output
    res = runner.invoke(app, ["data", "info", str(root), "--timestamp-unit", "ms"])
    assert res.exit_code == 2 and "'--timestamp-unit' must be 's' or left out" in res.output
    res = runner.invoke(app, ["data", "info", str(root), "--timestamp-unit", "min"])
    assert res.exit_code == 2 and "one of ('s', 'ms', 'us', 'ns')" in res.output


def test_timestamp_unit_option(tmp_path):
    path, _ = events_csv(tmp_path / "events.csv", scale=1000)
    res = runner.invoke(app, ["data", "info", str(path)])
    assert res.exit_code == 2
    assert "timestamp out of range" in res.output
    assert "--timestamp-unit ms" in res.output
    res = invoke("data", "info", str(path), "--timestamp-unit", "ms", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["time"]["min"] == 1_500_000_000


def test_evaluate_train_stream_demo_take_columns(tmp_path):
    header = "person,thing,rating,when"
    path, n = events_csv(tmp_path / "events.csv", header=header, n_users=20, n_items=8)
    cols = "user=person,item=thing,time=when"
    res = invoke("evaluate", "--data", str(path), "--columns", cols, "--model", "popularity")
    assert res.exit_code == 0, res.output
    res = invoke(
        "evaluate", "--data", str(path), "--columns", cols, "--model", "popularity", "--json"
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_events"] == n  # every (user, item) pair is distinct
    res = invoke(
        "train", "--data", str(path), "--columns", cols, "--out", str(tmp_path / "m"), "--json"
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_events"] == n
    res = invoke(
        "stream", "--data", str(path), "--columns", cols, "--model", "popularity",
        "--windows", "2", "--drift", "none", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_events"] == n
    res = invoke("demo", "--data", str(path), "--columns", cols, "--model", "popularity")
    assert res.exit_code == 0, res.output
    assert f"({n} events, 20 users" in res.stdout
    # without the mapping the header is not recognised: exit 2 with what was looked for
    res = runner.invoke(app, ["evaluate", "--data", str(path), "--model", "popularity"])
    assert res.exit_code == 2 and "unrecognised data format" in res.output


def test_parse_columns_and_service_data(tmp_path):
    from lifelongrec.cli import service_data
    from lifelongrec.data import Dataset, parse_columns

    got = parse_columns("User=a, item=b,TIME=c,type=d,rating=e")
    assert got == {
        "user_id": "a",
        "item_id": "b",
        "timestamp": "c",
        "event_type": "d",
        "value": "e",
    }
    long = "user_id=a,item_id=b,timestamp=c,event_type=d,value=e"
    assert parse_columns(long) == got
    assert parse_columns(None) is None and parse_columns("  ") is None
    path, n = events_csv(tmp_path / "events.csv", header="a,b,e,c")
    assert service_data(None) is None
    assert service_data("synthetic") == "synthetic"
    assert service_data(str(path)) == str(path)  # no option: the service reads the path
    ds = service_data(str(path), columns="user=a,item=b,time=c,value=e")
    assert isinstance(ds, Dataset) and len(ds) == n
    assert ds.events["user_id"].iloc[0] == "u0"
    from lifelongrec._errors import ParameterError

    with pytest.raises(ParameterError, match="--columns"):
        service_data(None, columns="user=a")


def test_stream_catalogue_time_admits_published_items():
    base = ["stream", "--data", "synthetic", "--synthetic-events", "1500", "--model"]
    base += ["popularity", "--strategy", "static", "--windows", "3", "--drift", "none"]
    res = runner.invoke(app, [*base, "--json", "--catalogue-time", "arrival"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    plain = json.loads(runner.invoke(app, [*base, "--json"]).output)
    assert out["catalogue_time"] == "arrival" and sum(w["n_admitted"] for w in out["windows"]) > 0
    assert out["n_unknown_items"] < plain["n_unknown_items"]
    res = runner.invoke(app, [*base, "--catalogue-time", "launch"])
    assert res.exit_code == 2 and "catalogue_time" in res.output and "'launch'" in res.output


def test_serve_runs_the_server_with_the_switch_interval_asked(tmp_path, monkeypatch):
    """`serve` hands its settings to run_server (stubbed: nothing listens); the default
    switch interval is the server's own."""
    import lifelongrec.serving._server as server

    calls = []
    monkeypatch.setattr(server, "run_server", lambda *a, **k: calls.append(k))
    home = tmp_path / "home"
    base = ["serve", "--home", str(home), "--data", "synthetic", "--model", "popularity", "--open"]
    assert runner.invoke(app, base).exit_code == 0
    assert runner.invoke(app, [*base, "--switch-interval-ms", "2"]).exit_code == 0
    assert [c["switch_interval"] for c in calls] == [server.SWITCH_INTERVAL, 0.002]
    assert runner.invoke(app, [*base, "--no-gc-freeze"]).exit_code == 0
    assert [c["freeze"] for c in calls] == [True, True, False]
    bad = runner.invoke(app, [*base, "--switch-interval-ms", "0"])
    assert bad.exit_code != 0 and "switch-interval-ms" in bad.output
