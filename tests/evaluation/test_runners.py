"""The experiment runners and their text reports, through ``lifelongrec.evaluation``'s
public names (what ``lifelongrec evaluate``, ``demo`` and ``stream`` run and print)."""

from __future__ import annotations

import pytest

import lifelongrec.evaluation as ev
from lifelongrec import ParameterError
from lifelongrec.data import load_data, make_split, prepare
from lifelongrec.evaluation import (
    check_stream_arguments,
    compare_models,
    comparison_report,
    evaluation_report,
    format_table,
    metric_columns,
    parse_params,
    prequential_report,
    run_evaluation,
    run_stream,
    stream_report,
)

SMALL = {"synthetic_events": 1500, "progress": False}


def events_csv(path, header="userId,movieId,rating,timestamp"):
    """Twelve users, six items, not every pair; one minute apart."""
    lines, t = [header], 1_500_000_000
    for u in range(12):
        for i in range(6):
            if (u + i) % 3:
                lines.append(f"u{u},i{i},{1 + (u * i) % 5},{t}")
                t += 60
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines) - 1


def test_the_runners_and_reports_are_exported():
    names = {"run_evaluation", "compare_models", "run_stream", "check_stream_arguments"}
    names |= {"parse_params", "format_table", "metric_columns", "evaluation_report"}
    names |= {"comparison_report", "prequential_report", "stream_report"}
    names |= {"STREAM_ALL", "DRIFT_NONE"}
    assert names <= set(ev.__all__)
    assert ev.STREAM_ALL == "all" and ev.DRIFT_NONE == "none"


# ----------------------------------------------------------------- parse_params
def test_parse_params_literals_json_words_and_text():
    got = parse_params(["a=32", "b=1e-3", "c=false", "d=True", "e=null", "f=cosine", "g=(1,2)"])
    assert got == {"a": 32, "b": 1e-3, "c": False, "d": True, "e": None, "f": "cosine", "g": (1, 2)}
    assert parse_params(None) == {} and parse_params([]) == {}
    assert parse_params([" k = 5", "s= x y "]) == {"k": 5, "s": " x y "}  # the value as typed
    assert parse_params(["a=1", "a=2"]) == {"a": 2}  # the last one wins


@pytest.mark.parametrize("pair", ["novalue", "=3", ""])
def test_parse_params_refuses_a_pair_without_key_or_sign(pair):
    with pytest.raises(ParameterError, match="KEY=VALUE") as info:
        parse_params([pair])
    assert info.value.name == "--param" and info.value.value == pair


# --------------------------------------------------------------- run_evaluation
def test_run_evaluation_gives_the_figures_params_and_preprocessing():
    out = run_evaluation("synthetic", "itemknn", "loo", 5, params={"k_neighbors": 7}, **SMALL)
    assert out["model"] == "itemknn" and out["params"]["k_neighbors"] == 7
    # the split names its protocol in full; the report's head line shows the argument
    assert (out["data"], out["protocol"], out["k"]) == ("synthetic", "leave_one_out", 5)
    head = evaluation_report(out, "synthetic", "loo").splitlines()[0]
    assert head.startswith("data=synthetic protocol=loo ranking=full users=")
    assert set(metric_columns(5)) <= set(out) and out["ranking"] == "full"
    assert [e["step"] for e in out["preprocessing"]][-2:] == ["sort_by_time", "deduplicate"]
    assert out["n_events"] == out["preprocessing"][-1]["rows_out"]
    assert "history" not in out  # a classical model keeps no training record


def test_run_evaluation_on_a_given_split_reads_nothing():
    ds = prepare(load_data("synthetic", synthetic_events=1500))
    split = make_split(ds, "temporal")
    given = run_evaluation(
        "label only", "popularity", "temporal", 10, dataset=ds, split=split, progress=False
    )
    loaded = run_evaluation("synthetic", "popularity", "temporal", 10, **SMALL)
    assert given["data"] == "label only" and given["n_events"] == loaded["n_events"]
    assert given["ndcg@10"] == loaded["ndcg@10"] and given["hr@10"] == loaded["hr@10"]


def test_run_evaluation_tells_notify_which_columns_it_recognised(tmp_path):
    path, n = events_csv(tmp_path / "events.csv")
    notes = []
    out = run_evaluation(str(path), "popularity", "loo", 5, progress=False, notify=notes.append)
    assert out["n_events"] == n
    assert notes == [
        "columns recognised in the header: user_id <- userId, item_id <- movieId, "
        "timestamp <- timestamp, value <- rating (--columns ROLE=COLUMN to choose others)"
    ]
    notes.clear()
    run_evaluation("synthetic", "popularity", "loo", 5, notify=notes.append, **SMALL)
    assert notes == []  # nothing to say about the synthetic world's columns


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"model": "nosuchmodel"}, "model"),
        ({"protocol": "random"}, "--protocol"),
        ({"columns": "user=a"}, "--columns"),
        ({"timestamp_unit": "min"}, "--timestamp-unit"),
    ],
)
def test_run_evaluation_names_a_bad_argument(kwargs, name):
    args = {"data": "synthetic", "model": "popularity", "protocol": "loo", "k": 5, **kwargs}
    with pytest.raises(ParameterError) as info:
        run_evaluation(**args, **SMALL)
    assert info.value.name == name


# --------------------------------------------------------------- compare_models
def test_compare_models_is_lazy_and_notes_a_model_that_refuses_the_data(tmp_path):
    path, _ = events_csv(tmp_path / "events.csv")
    ds = prepare(load_data(str(path)))  # no catalogue: the content model cannot fit
    seen = []
    rows = compare_models(
        "events", ["popularity", "content", "itemknn"], "loo", 5,
        dataset=ds, split=make_split(ds, "loo"), on_model=seen.append,
    )  # fmt: skip
    assert seen == []  # a generator: nothing fitted before a row is asked for
    first = next(rows)
    assert seen == ["popularity"] and first["model"] == "popularity" and "ndcg@5" in first
    refused, last = list(rows)
    assert seen == ["popularity", "content", "itemknn"]
    assert refused["model"] == "content" and refused["note"].startswith("n/a: ")
    assert "no item catalogue" in refused["note"] and last["model"] == "itemknn"
    text = comparison_report([first, refused, last], 5)
    assert text.splitlines()[0].split() == ["model", *metric_columns(5)] + [
        "fit_seconds",
        "recommend_seconds",
    ]
    assert text.splitlines()[-1].startswith("content: n/a: ")


# ------------------------------------------------------- check_stream_arguments
@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        (("synthetic", "itemknn", "sometimes", 3, {}, 10, None), {}, "--strategy"),
        (("synthetic", "itemknn", "all", 1, {}, 10, None), {}, "--windows"),
        (("synthetic", "nosuch", "all", 3, {}, 10, None), {}, "--model"),
        (("synthetic", "itemknn", "all", 3, {"k_neighbours": 5}, 10, None), {}, "--param"),
        (("synthetic", "itemknn", "all", 3, {"k_neighbors": 0}, 10, None), {}, "k_neighbors"),
        (("synthetic", "itemknn", "all", 3, {}, 0, None), {}, "--replay-size"),
        (("synthetic", "itemknn", "all", 3, {}, 10, "out.svg"), {}, "--plot"),
        (("synthetic", "itemknn", "all", 3, {}, 10, None), {"drift": "cusum"}, "--drift"),
        (("synthetic", "itemknn", "all", 3, {}, 10, None), {"drift_delta": 2.0}, "--drift-delta"),
        (("data.csv", "itemknn", "all", 3, {}, 10, None), {"shift_at": 0.5}, "--shift-at"),
        (("synthetic", "itemknn", "all", 3, {}, 10, None), {"shift_at": 1.0}, "--shift-at"),
        (
            ("synthetic", "itemknn", "all", 3, {}, 10, None),
            {"lifelong": {"replay_share": 1.0}},
            "--replay-share",
        ),
        (
            ("synthetic", "itemknn", "finetune", 3, {}, 10, None),
            {"lifelong": {"ewc_weight": 1.0}},
            "--ewc-weight",
        ),
        (
            ("synthetic", "itemknn", "lifelong", 3, {}, 10, None),
            {"lifelong": {"distill_weight": 1.0}},
            "--distill-weight",
        ),
        (
            ("synthetic", "itemknn", "retrain", 3, {}, 10, None),
            {"lifelong": {"replay_drift_power": 2.0}},
            "--replay-drift-power",
        ),
        (
            ("synthetic", "itemknn", "lifelong", 3, {}, 10, None),
            {"lifelong": {"replay_drift_power": -1.0}},
            "--replay-drift-power",
        ),
    ],
)
def test_check_stream_arguments_names_the_option(args, kwargs, name):
    from pathlib import Path

    args = (*args[:6], None if args[6] is None else Path(args[6]))
    with pytest.raises(ParameterError) as info:
        check_stream_arguments(*args, **kwargs)
    assert info.value.name == name


def test_check_stream_arguments_returns_the_strategies_to_run():
    assert check_stream_arguments("synthetic", "itemknn", "retrain", 2, {}, 1, None) == ["retrain"]
    names = check_stream_arguments(
        "synthetic", "sequential", "lifelong", 3, {"dim": 8}, 10, None,
        drift="page-hinkley", drift_delta=0.01, shift_at=0.5,
        lifelong={"distill_weight": 1.0, "ewc_weight": 2.0, "drift_replay_share": 0.1,
                  "replay_drift_power": 0.5},
    )  # fmt: skip
    assert names == ["lifelong"]


# -------------------------------------------------------------------- run_stream
def test_run_stream_one_strategy_and_its_report(tmp_path):
    out = run_stream(
        "synthetic", "popularity", "finetune", 3, 5, drift="none", shift_at=0.5, **SMALL
    )
    assert out["strategy"] == "finetune" and out["n_windows"] == 3 and out["k"] == 5
    assert out["data"] == "synthetic" and out["shift_at"] == 0.5 and out["preprocessing"]
    assert "strategies" not in out and "plot" not in out
    text = stream_report(out, 5)
    lines = text.splitlines()
    assert lines[0] == "data=synthetic full ranking, next item, only the past visible"
    assert lines[2].startswith("strategy=finetune model=popularity windows=3")
    assert "backward transfer" in text and "update_cpu_s" in text
    assert "strategy  recall@5" not in text  # no comparison table for one strategy


def test_run_stream_every_strategy_with_a_plot_and_notes(tmp_path):
    path, n = events_csv(tmp_path / "events.csv")
    notes = []
    png = tmp_path / "stream.png"
    out = run_stream(
        str(path), "itemknn", "all", 2, 3, drift="adwin", plot=png, progress=False,
        notify=notes.append,
    )  # fmt: skip
    assert list(out["strategies"]) == ["static", "retrain", "finetune", "lifelong"]
    assert out["n_events"] == n and out["plot"] == str(png) and png.stat().st_size > 0
    assert len(notes) == 1 and notes[0].startswith("columns recognised in the header")
    text = stream_report(out, 3)
    assert text.count("window  start") == 4 and "bwt_ndcg@3" in text
    assert text.splitlines()[-1] == f"plot: {png}"
    # this CSV's times are epoch seconds: windows show as dates
    assert "2017-07-14" in prequential_report(out["strategies"]["static"], 3, dates=True)
    assert "1500000000" in prequential_report(out["strategies"]["static"], 3, dates=False)


def test_run_stream_checks_before_reading_data(tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(ParameterError, match="--windows"):
        run_stream(missing, "itemknn", "finetune", 1, 10, progress=False)
    with pytest.raises(FileNotFoundError):
        run_stream(missing, "itemknn", "finetune", 2, 10, progress=False)


def test_run_stream_on_a_given_dataset_reads_nothing(tmp_path):
    from lifelongrec.data import SyntheticWorld

    world = SyntheticWorld(n_events=1500, seed=4, shift_at=0.6, shift_share=0.5)
    data = world.generate()
    out = run_stream(
        str(tmp_path / "missing"), "popularity", "finetune", 3, 5, progress=False, dataset=data
    )
    assert out["data"] == str(tmp_path / "missing") and out["n_events"] == len(prepare(data))
    assert out["drift"]["true_shift_timestamp"] == data.meta["shift_timestamp"]
    assert [e["step"] for e in out["preprocessing"]][-1] == "deduplicate"
    with pytest.raises(ParameterError, match="shift_at"):
        run_stream("x", "popularity", "finetune", 3, 5, shift_at=0.5, dataset=data)


# ----------------------------------------------------------------------- reports
def test_format_table_and_evaluation_report():
    rows = [{"model": "a", "x": 0.5, "n": 3}, {"model": "long name", "x": None, "n": 10}]
    assert format_table(rows, ["model", "x", "n"]).splitlines() == [
        "model      x       n ",
        "---------  ------  --",
        "a          0.5000   3",
        "long name          10",
    ]
    assert format_table([], ["model"]).splitlines() == ["model", "-----"]
    result = {
        "model": "pop", "data": "d", "protocol": "loo", "k": 2, "ranking": "full",
        "n_users_evaluated": 4, "ndcg@2": 0.25, "sampled10_ndcg@2": 0.5, "auc": 0.75,
    }  # fmt: skip
    lines = evaluation_report(result, "d", "loo").splitlines()
    assert lines[0] == "data=d protocol=loo ranking=full users=4"
    assert lines[1].split()[-2:] == ["sampled10_ndcg@2", "auc"]
    assert lines[3].split()[-2:] == ["0.5000", "0.7500"]
