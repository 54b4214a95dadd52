"""The benchmark drivers in benchmarks/ run their smallest paths (seconds, synthetic data)."""

from __future__ import annotations

import argparse
import json

import pytest

TINY = {"dim": 8, "n_heads": 2, "n_layers": 1, "max_len": 10, "epochs": 1, "verbose": False}


@pytest.fixture(scope="module")
def bench(benchmark_module):
    with benchmark_module("sequential") as module:
        yield module


def test_parser_defaults_and_overrides(bench):
    parser = bench.build_parser()
    args = parser.parse_args(["compare"])
    assert args.datasets == ["ml-100k", "ml-latest-small", "beauty"]
    assert "sequential" in args.models and "hybrid" in args.models
    assert parser.parse_args(["multitask"]).seeds == [0, 1, 2]
    assert parser.parse_args(["coldstart"]).datasets == ["ml-latest-small"]
    args = parser.parse_args(
        ["ablation", "--seeds", "3", "4", "--epochs", "2", "--param", "dim=16", "--no-write"]
    )
    assert args.seeds == [3, 4] and args.no_write
    params = bench.seq_params(args, 3, n_layers=1)
    assert params == {"verbose": False, "random_state": 3, "dim": 16, "epochs": 2, "n_layers": 1}
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--datasets", "nope"])


def test_compare_jobs_give_hybrid_the_content_less_override(bench):
    args = bench.build_parser().parse_args(
        ["compare", "--datasets", "beauty", "ml-100k", "--models", "hybrid", "sequential"]
    )
    args.seeds = [0, 1]
    jobs = bench.compare_jobs(args)
    labels = [(j["dataset"], j["label"], j.get("seed")) for j in jobs]
    assert ("beauty", "hybrid (ease+als)", None) in labels
    assert ("ml-100k", "hybrid", None) in labels
    assert [j["seed"] for j in jobs if j["model"] == "sequential"] == [0, 1, 0, 1]


def test_summarise_and_table(bench):
    results = [
        {"dataset": "d", "label": "seq", "ndcg@10": 0.1, "head_metrics": {"x": {"y": 1.0}}},
        {"dataset": "d", "label": "seq", "ndcg@10": 0.3, "head_metrics": {"x": {"y": 3.0}}},
        {"dataset": "d", "label": "pop", "note": "n/a: broken"},
    ]
    rows = bench.summarise(results, ["ndcg@10", "head_metrics.x.y"])
    seq, pop = rows
    assert seq["n_runs"] == 2 and seq["ndcg@10"] == pytest.approx((0.2, 0.1414213), rel=1e-5)
    assert seq["head_metrics.x.y"][0] == pytest.approx(2.0)
    text = bench.md_table(
        rows, [("dataset", "dataset", 0), ("label", "model", 0), ("ndcg@10", "NDCG", 3)]
    )
    assert "| d | seq | 0.200 ± 0.141 |" in text
    assert "n/a: broken" in text


@pytest.fixture
def common(benchmark_module):
    with benchmark_module("_common") as module:
        yield module


def test_write_block_replaces_only_its_own_block(common, tmp_path, monkeypatch):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# B\n\nkeep me\n")
    monkeypatch.setattr(common, "DOC", doc)
    monkeypatch.setattr(common, "RAW_DIR", tmp_path / "raw")
    common.write_block("x", "Title", "cmd --a", ["first"], {"results": []})
    common.write_block("x", "Title", "cmd --b", ["second"], {"results": [1]})
    text = doc.read_text()
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count("<!-- sequential-x:begin -->") == 1
    assert (tmp_path / "raw" / "sequential-x.json").exists()
    assert json.loads((tmp_path / "raw" / "sequential-x.json").read_text()) == {
        "command": "cmd --b",
        "results": [1],
    }


def test_the_block_format(common, tmp_path, monkeypatch):
    """The layout every script's block has (docs/benchmarks.md is rewritten by them)."""
    doc = tmp_path / "benchmarks.md"
    monkeypatch.setattr(common, "DOC", doc)
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    monkeypatch.setattr(common, "machine", lambda: "2 cores")
    common.write_block("y", "A title", "cmd", ["line 1", "", "line 2"], {}, prefix="service")
    assert doc.read_text() == (
        "# Benchmarks\n\n"
        "<!-- service-y:begin -->\n## A title\n\nCommand:\n\n    cmd\n\n"
        "Machine: 2 cores.\n\nline 1\n\nline 2\n\n"
        "Raw results: `docs/benchmarks/service-y.json`.\n<!-- service-y:end -->\n"
    )
    assert (
        common.command_line("x.py", ["--a", "b c"]) == ".venv/bin/python benchmarks/x.py --a 'b c'"
    )


def test_worker_offline_reports_epochs_and_heads(bench):
    job = {"dataset": "synthetic", "model": "sequential", "synthetic_events": 1500}
    job["params"] = {**TINY, "text_encoder": None}
    res = bench.worker(job)
    assert 0.0 <= res["ndcg@10"] <= 1.0
    assert res["epochs_run"] == 1 and res["seconds_per_epoch"] > 0
    assert "next_item" in res["head_metrics"]


def test_worker_coldstart_admits_cold_items_untrained(bench):
    job = {"task": "coldstart", "dataset": "synthetic", "model": "sequential"}
    job.update(synthetic_events=1500, strip_content=True)
    job["params"] = {**TINY, **bench.NO_CONTENT_PARAMS}
    res = bench.worker(job)
    assert res["n_cold_test_events"] > 0
    assert (
        res["n_cold_events_known_users"] + res["n_cold_events_new_users"]
        == (res["n_cold_test_events"])
    )
    assert (
        res["n_cold_events_scored"] + res["n_cold_events_without_history"]
        == (res["n_cold_test_events"])
    )
    assert res["n_users_scored"] > 0 and 0.0 <= res["full_recall@10"] <= 1.0
    # one relevant item per event: recall is the hit rate; the cold-only ranking is
    # over fewer items, so it can only be easier
    assert res["full_recall@10"] == res["full_hr@10"] <= res["coldonly_hr@10"]
    # a hit needs its cold item in the top 10, so hits are at most the cold slots
    assert 0.0 <= res["full_cold_share@10"] <= 1.0
    assert res["full_recall@10"] <= 10 * res["full_cold_share@10"] + 1e-12
    # warm test events: scored over the whole catalogue; NDCG discounts hits
    assert res["n_warm_scored"] > 0
    assert 0.0 <= res["warm_ndcg@10"] <= res["warm_recall@10"] <= 1.0
    # leaving the cold items out of the ranking can only lift a warm target
    assert res["warm_ndcg@10"] <= res["warmonly_ndcg@10"] <= 1.0
    # admitting trained nothing: the fit's epochs only
    assert [h["update"] for h in res["history"]] == [0]


def test_main_runs_a_job_in_its_own_process(bench, capsys):
    bench.main(
        [
            "compare",
            "--datasets",
            "synthetic",
            "--synthetic-events",
            "1500",
            "--models",
            "popularity",
            "--no-write",
        ]
    )
    out = capsys.readouterr().out
    assert "| synthetic | popularity |" in out and "peak=" in out


def test_load_prepared_drops_named_attributes_only(bench):
    kept = bench.load_prepared({"dataset": "ml-100k"}).items
    dropped = bench.load_prepared({"dataset": "ml-100k", "drop_attributes": ["year"]}).items
    assert sum("year" in a for a in kept["attributes"]) == 1681
    assert not any("year" in a for a in dropped["attributes"])
    # everything else is as loaded
    without = [{k: v for k, v in a.items() if k != "year"} for a in kept["attributes"]]
    assert dropped["attributes"].tolist() == without
    assert dropped["item_id"].tolist() == kept["item_id"].tolist()


def test_load_prepared_gives_named_attributes_as_text(bench):
    kept = bench.load_prepared({"dataset": "ml-100k"}).items
    text = bench.load_prepared({"dataset": "ml-100k", "text_attributes": ["year"]}).items
    want = [{k: (str(v) if k == "year" else v) for k, v in a.items()} for a in kept["attributes"]]
    assert text["attributes"].tolist() == want
    assert sum(isinstance(a.get("year"), str) for a in text["attributes"]) == 1681


def test_cold_arms_without_year_name_the_attribute(bench):
    args = bench.build_parser().parse_args(["coldstart", "--arms", "genres-no-year", "id-only"])
    jobs = bench.variant_jobs(args, {a: bench.COLD_ARMS[a] for a in args.arms}, "coldstart")
    by = {j["label"]: j for j in jobs}
    assert by["genres-no-year"]["drop_attributes"] == ["year"]
    assert by["genres-no-year"]["params"]["text_encoder"] is None
    assert "drop_attributes" not in by["id-only"] and by["id-only"]["strip_content"]


def test_encoders_subcommand_and_widths(bench):
    args = bench.build_parser().parse_args(["encoders"])
    assert args.datasets == ["ml-100k", "ml-latest-small", "beauty"] and args.seeds == [0, 1, 2]
    assert bench.encoder_dims(64) == list(range(54, 81, 2))
    assert all(d % 2 == 0 for d in bench.encoder_dims(17))


def test_tune_candidates_skip_slow_and_repeated_settings(benchmark_module):
    study = {
        "default_value": 0.10,
        "trials": [
            {"number": -1, "params": {}, "value": 0.10, "seconds": 30.0},
            {"number": 0, "params": {"dim": 32}, "value": 0.12, "seconds": 500.0},
            {"number": 1, "params": {"dim": 64}, "value": 0.11, "seconds": 60.0},
            {"number": 2, "params": {"dim": 64}, "value": 0.11, "seconds": 61.0},
            {"number": 3, "params": {"dim": 16}, "value": 0.09, "seconds": 20.0},
        ],
    }
    with benchmark_module("tune") as tune:
        fast = tune.candidates(study, top=2, max_seconds=100)
        every = tune.candidates(study, top=1)
    assert [c["label"] for c in fast] == ["starting point", "trial 1", "trial 3"]
    assert fast[0]["stage1"] == 0.10 and fast[1]["params"] == {"dim": 64}
    assert [c["label"] for c in every] == ["starting point", "trial 0"]


def test_tune_without_a_search_rescores_the_extra_settings(benchmark_module, capsys):
    with benchmark_module("tune") as tune:
        tune.main(
            [
                "--data",
                "synthetic",
                "--model",
                "itemknn",
                "--trials",
                "0",
                "--seeds",
                "0",
                "--extra",
                '{"k_neighbors": 20}',
                "--test",
                "--no-write",
            ]
        )
    out = capsys.readouterr().out
    assert "No search (`--trials 0`)" in out and "starting point, the 0 best settings" in out
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| starting point") or line.startswith("| extra 1")
    ]
    assert len(rows) == 2 and sum("(chosen)" in r for r in rows) == 1


def _tune_args(*extra):
    base = ["--data", "synthetic", "--model", "itemknn", "--trials", "0", "--seeds", "0"]
    return [*base, *extra, "--no-write"]


def test_tune_reuses_an_earlier_runs_figures(benchmark_module, capsys, tmp_path):
    """--reuse takes an earlier run's settings with their figures (fits are seeded) and
    fits only the new ones; a run on another split or with other seeds is refused."""
    with benchmark_module("tune") as tune:
        study = tune.study(
            argparse.Namespace(
                data="synthetic",
                model="itemknn",
                study=None,
                trials=0,
                valid_events=3,
                synthetic_events=3000,
            )  # fmt: skip
        )
        earlier = {
            "study": study,
            "defaults": tune.model_defaults("itemknn"),
            "settings": [
                {
                    "label": "starting point",
                    "params": {},
                    "stage1": None,
                    "validation": [{"seed": 0, "ndcg@10": 0.5, "fit_seconds": 1.0}],
                    "val_mean": 0.5,
                    "val_std": None,
                    "test": [{"seed": 0, "ndcg@10": 0.25, "hr@10": 0.5, "fit_seconds": 1.0}],
                    "test_ndcg@10": (0.25, None),
                    "test_hr@10": (0.5, None),
                    "test_fit_seconds": (1.0, None),
                },
                {
                    "label": "extra 1",
                    "params": {"k_neighbors": 5},
                    "stage1": None,
                    "validation": [{"seed": 0, "ndcg@10": 0.01, "fit_seconds": 1.0}],
                    "val_mean": 0.01,
                    "val_std": None,
                },
            ],
        }
        path = tmp_path / "tune-synthetic-old.json"
        path.write_text(json.dumps(earlier))
        tune.main(_tune_args("--reuse", str(path), "--extra", '{"k_neighbors": 20}', "--test"))
        out = capsys.readouterr().out
        rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
        # the recorded figures as they were; the new setting fitted; the best is chosen
        assert rows[0].startswith(
            "| starting point (from tune-synthetic-old) (chosen) | – | 0.5000"
        )
        assert "0.2500" in rows[0]
        assert rows[1].startswith("| extra 1 (from tune-synthetic-old) | – | 0.0100")
        assert rows[2].startswith("| extra 1 | – |") and "k_neighbors=20" in rows[2]
        assert "taken with their figures from the earlier run" in out
        # "starting point" was not fitted again: no line of its validation was printed
        assert "starting point   seed=0" not in out and "extra 1          seed=0" in out
        other = {**earlier, "study": {**study, "n_validation": study["n_validation"] + 1}}
        path.write_text(json.dumps(other))
        with pytest.raises(SystemExit, match="another model or split"):
            tune.main(_tune_args("--reuse", str(path)))
        other = {**earlier, "defaults": {**earlier["defaults"], "k_neighbors": 7}}
        path.write_text(json.dumps(other))
        with pytest.raises(SystemExit, match="other defaults of itemknn"):
            tune.main(_tune_args("--reuse", str(path)))
        path.write_text(json.dumps(earlier))
        with pytest.raises(SystemExit, match="seeds other than"):
            tune.main([*_tune_args("--reuse", str(path)), "--seeds", "0", "1"])


def test_time_to_quality_curves(benchmark_module):
    """RecBole's recorded run read as wall seconds at each validation (set-up first)."""
    from pathlib import Path

    with benchmark_module("time_to_quality") as ttq:
        path = Path(__file__).resolve().parents[1] / "docs/benchmarks"
        run = json.loads((path / "recbole-sasrec-ml100k-converged.json").read_text())["runs"][0]
        peer = ttq.peer_curve(path / "recbole-sasrec-ml100k-converged.json")
        first = run["setup_seconds"] + run["train_seconds_per_epoch"][0]
        first += run["valid_seconds_per_epoch"][0]
        assert peer["points"][0] == pytest.approx((first, run["valid_ndcg@10_per_epoch"][0]))
        assert len(peer["points"]) == run["epochs_run"]
        assert ttq.best(peer["points"])[1] == run["best_valid_ndcg@10"]
        points = [(1.0, 0.1), (2.0, 0.3), (3.0, 0.2), (4.0, 0.3)]
        assert ttq.best(points) == (2.0, 0.3)  # the first of equal bests
        assert ttq.reached(points, 0.25) == 2.0 and ttq.reached(points, 0.5) is None


def test_worker_size_counts_parameters_with_the_data_dropout(bench):
    """The encoders command sizes HSTU widths from a default fit, whose dropout is
    chosen by the data (``dropout=None``); sizing must build modules all the same."""
    job = {"task": "size", "dataset": "synthetic", "model": "sequential"}
    job.update(synthetic_events=1500, dims=[8, 10])
    job["base"] = {k: v for k, v in TINY.items() if k != "dim"} | {"dim": 8}
    job["params"] = {"encoder": "hstu"}
    res = bench.worker(job)
    assert "note" not in res, res.get("note")
    assert set(res["counts"]) == {"8", "10"}
    assert 0 < res["counts"]["8"] < res["counts"]["10"]
    assert res["default_parameters"] > 0


def test_encoders_arms_filter(bench):
    args = bench.build_parser().parse_args(["encoders", "--arms", "hstu"])
    assert args.arms == ["hstu"] and args.seeds == [0, 1, 2]
    assert bench.build_parser().parse_args(["encoders"]).arms == ["sasrec", "hstu"]
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["encoders", "--arms", "gru"])
