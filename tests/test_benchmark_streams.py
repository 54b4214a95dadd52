"""benchmarks/streams.py: issue 15's table over a family of streams, on a tiny family
member (shares against retrain, detection delay, unknown items, the targets' summary)."""

from __future__ import annotations

import json

import pytest

TINY = ["--family", "train", "--streams", "train-small-10k", "--events", "3000"]
TINY += ["--windows", "3", "--models", "popularity"]


@pytest.fixture(scope="module")
def streams_bench(benchmark_module):
    with benchmark_module("streams") as module:
        yield module


def test_the_smoke_run_gives_the_table_against_retrain(streams_bench, capsys):
    raw = streams_bench.main([*TINY, "--no-write"])
    out = capsys.readouterr().out
    header = "| " + " | ".join(h for _, h, _ in streams_bench.table_columns(10)) + " |"
    assert header in out
    for words in ("stream", "mean NDCG@10", "NDCG vs retrain", "update CPU s", "CPU vs retrain"):
        assert f" {words} |" in header
    assert (
        "| BWT NDCG@10 | detections | detection delay | windows to recover | unknown items |"
        in header
    )
    assert "| train-small-10k | 3000 | 75 | 120 | 105 | 0.50 | 0.60 | 0.50 | 10 | 2.0 |" in out
    assert "**popularity**: worst stream for lifelong: train-small-10k" in out

    (run,) = raw["results"]
    assert run["stream"] == "train-small-10k" and run["config"]["n_events"] == 3000
    assert run["shift"]["shift_users"] == round(0.5 * 75)
    by = {r["strategy"]: r for r in raw["rows"]}
    assert list(by) == ["static", "retrain", "finetune", "lifelong"]
    ref, got = run["strategies"]["retrain"], run["strategies"]["lifelong"]
    assert by["lifelong"]["ndcg_share"] == pytest.approx(
        got["mean"]["ndcg@10"] / ref["mean"]["ndcg@10"]
    )
    assert by["lifelong"]["cpu_share"] == pytest.approx(
        got["total_update_cpu_seconds_after_first"] / ref["total_update_cpu_seconds_after_first"]
    )
    assert by["retrain"]["ndcg_share"] == pytest.approx(1.0)
    assert by["static"]["bwt"] == 0.0
    tested = sum(w["n_events"] for w in got["windows"][1:])
    assert by["lifelong"]["unknown_share"] == pytest.approx(got["n_unknown_items"] / tested)
    # a model that never learns keeps missing the items that arrived after its fit
    assert by["static"]["unknown_share"] >= by["retrain"]["unknown_share"]
    for r in raw["rows"]:  # a true shift: a delay, or a note that it went unnoticed
        assert r["delay"] is not None
        assert r["delay"]["missed"] or r["delay"]["delay_seconds"] >= 0
    # windows to recover, recomputed: the first window from the shift's on which the
    # strategy's NDCG@10 reaches 90 % of retrain's
    shift = run["shift"]["shift_timestamp"]
    for name, r in by.items():
        mine = run["strategies"][name]["windows"]
        first = next(i for i in range(1, len(mine)) if mine[i]["end"] > shift)
        ok = [
            i - first
            for i in range(first, len(mine))
            if mine[i]["ndcg@10"] >= 0.9 * ref["windows"][i]["ndcg@10"]
        ]
        assert r["recover"] == {"shift_window": first, "windows": ok[0] if ok else None}
    assert by["retrain"]["recover"]["windows"] == 0


def test_writes_the_family_block_and_merges(streams_bench, benchmark_module, tmp_path, monkeypatch):
    with benchmark_module("_common") as common:  # the scripts' block writer, to tmp_path
        monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
        monkeypatch.setattr(common, "RAW_DIR", tmp_path)
        streams_bench.main([*TINY, "--drift", "none"])
        calm = ["--family", "train", "--streams", "train-calm-20k", "--events", "2000"]
        streams_bench.main([*calm, "--windows", "3", "--models", "popularity", "--merge"])
    raw = json.loads((tmp_path / "streams-train.json").read_text())
    assert [r["stream"] for r in raw["results"]] == ["train-small-10k", "train-calm-20k"]
    assert raw["family"] == "train" and raw["command"].startswith(".venv/bin/python")
    text = (tmp_path / "benchmarks.md").read_text()
    assert text.count("<!-- streams-train:begin -->") == 1
    assert "| train-calm-20k | popularity | lifelong |" in text
    assert "| train-small-10k | popularity | lifelong |" in text
    calm_rows = [r for r in raw["rows"] if r["stream"] == "train-calm-20k"]
    assert all(r["delay"] is None for r in calm_rows)  # no true shift: no delay
    assert all(r["recover"] is None for r in calm_rows)  # nor a recovery
    # each strategy keeps the command that made it; the block says which made which rows
    small, calm_run = raw["results"]
    small_by = small["strategies"]["lifelong"]["made_by"]
    calm_by = calm_run["strategies"]["static"]["made_by"]
    assert "--drift none" in small_by["command"] and "--merge" not in small_by["command"]
    assert "train-calm-20k" in calm_by["command"] and "--merge" in calm_by["command"]
    assert small_by["run_at"].endswith(" UTC") and calm_by["run_at"].endswith(" UTC")
    assert "Rows by command" in text
    line = f"- `{small_by['command']}` (runs started {small_by['run_at']}): popularity on"
    assert f"{line} train-small-10k\n" in text
    assert f"- `{calm_by['command']}` (runs started {calm_by['run_at']})" in text


def test_provenance_lists_commands_only_when_rows_come_from_several(streams_bench):
    def run(stream, model, made):
        strategies = {n: {"made_by": by} for n, by in zip("wxyz", made, strict=True)}
        return {"stream": stream, "model": model, "strategies": strategies}

    one = {"command": "c1", "run_at": "2026-01-01 10:00 UTC"}
    later = {"command": "c1", "run_at": "2026-01-01 10:05 UTC"}
    runs = [run("a", "m", [one] * 4), run("b", "m", [later] * 4)]
    assert streams_bench.provenance(runs) == []  # one command made them all
    two = {"command": "c2", "run_at": "2026-01-02 09:00 UTC"}
    runs.append(run("a", "n", [one, one, two, None]))  # re-run in part; one not recorded
    lines = streams_bench.provenance(runs)
    assert lines[0].startswith("Rows by command") and lines[-1] == ""
    assert (
        "- `c1` (runs started 2026-01-01 10:00 UTC to 2026-01-01 10:05 UTC): "
        "m on a, m on b, n on a (w, x)" in lines
    )
    assert "- `c2` (runs started 2026-01-02 09:00 UTC): n on a (y)" in lines
    assert "- `(not recorded)` (runs started ?): n on a (z)" in lines


def test_strategies_rerun_only_those_and_keep_the_others(
    streams_bench, benchmark_module, tmp_path, monkeypatch
):
    with benchmark_module("_common") as common:
        monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
        monkeypatch.setattr(common, "RAW_DIR", tmp_path)
        first = streams_bench.main([*TINY, "--drift", "none"])
        with pytest.raises(SystemExit):  # the others must come from the block
            streams_bench.main([*TINY, "--drift", "none", "--strategies", "lifelong"])
        with pytest.raises(SystemExit):  # a stream the block does not hold
            other = ["--streams", "train-calm-20k", "--strategies", "lifelong", "--merge"]
            streams_bench.main([*TINY, *other])
        again = streams_bench.main(
            [*TINY, "--drift", "none", "--strategies", "lifelong", "static", "--merge"]
        )
    before, after = first["results"][0]["strategies"], again["results"][0]["strategies"]
    assert list(after) == ["static", "retrain", "finetune", "lifelong"]
    assert after["retrain"] == before["retrain"] and after["finetune"] == before["finetune"]
    for name in ("static", "lifelong"):  # run again: same figures, new timings
        assert after[name]["windows"][-1]["ndcg@10"] == before[name]["windows"][-1]["ndcg@10"]
        assert set(after[name]) == set(before[name])
    # each strategy says which command made it: the re-run ones the new command, the
    # kept ones the first; the block lists both
    for name in ("static", "lifelong"):
        assert after[name]["made_by"]["command"] != before[name]["made_by"]["command"]
        assert "--strategies" in after[name]["made_by"]["command"]
    lines = streams_bench.provenance(again["results"])
    new_by, old_by = after["lifelong"]["made_by"], before["retrain"]["made_by"]
    assert any(
        line.startswith(f"- `{new_by['command']}`")
        and line.endswith("popularity on train-small-10k (static, lifelong)")
        for line in lines
    )
    assert any(
        line.startswith(f"- `{old_by['command']}`")
        and line.endswith("popularity on train-small-10k (retrain, finetune)")
        for line in lines
    )
    rows = {r["strategy"]: r for r in again["rows"]}
    assert rows["lifelong"]["ndcg_share"] == pytest.approx(
        rows["lifelong"]["ndcg@10"] / rows["retrain"]["ndcg@10"]
    )


def test_target_summary_names_the_misses(streams_bench):
    def row(stream, strategy, share, cpu, bwt):
        return dict(
            stream=stream, model="m", strategy=strategy, ndcg_share=share, cpu_share=cpu, bwt=bwt
        )

    rows = [
        row("a", "retrain", 1.0, 1.0, -0.05),
        row("a", "finetune", 0.5, 0.1, -0.04),
        row("a", "lifelong", 0.99, 0.15, 0.0),
        row("b", "retrain", 1.0, 1.0, -0.05),
        row("b", "finetune", 0.5, 0.1, 0.01),
        row("b", "lifelong", 0.9, 0.25, 0.0),
    ]
    text = streams_bench.target_summary(rows, "m")
    assert text.startswith("**m**: worst stream for lifelong: b (90.0 % of retrain's NDCG@10)")
    assert "holds on 1 of 2 (not on b (90.0 % at 25.0 %))" in text
    assert "BWT better than fine-tune's: holds on 1 of 2 (not on b (0.0000 vs 0.0100))" in text
    assert streams_bench.target_summary(rows, "other") is None
    # a miss that rounds to the target shows the decimals that make it one
    near = [row("c", "retrain", 1.0, 1.0, 0.0), row("c", "lifelong", 0.97985, 0.2004, 0.1)]
    assert "(not on c (97.98 % at 20.04 %))" in streams_bench.target_summary(near, "m")
    assert "estimated training FLOPs" not in text  # none estimated: no such sentence
    # with estimated FLOPs too: the same target against them, on the streams that have them
    rows[2]["gflop_share"], rows[5]["gflop_share"] = 0.21, 0.18
    text = streams_bench.target_summary(rows, "m")
    assert (
        "The same with its estimated training FLOPs in place of CPU seconds (the same on "
        "every machine): holds on 0 of 2 (not on a (99.0 % at 21.0 %), b (90.0 % at 18.0 %))."
    ) in text


def test_shrink_keeps_events_per_user(streams_bench):
    from lifelongrec.data import synthetic_streams

    world = synthetic_streams("test")["test-half-late-80k"]
    small = streams_bench.shrink(world, 8_000)
    assert small.n_events == 8_000 and small.n_users == 270 and small.seed == world.seed
    assert streams_bench.shrink(world, None) is world
