"""benchmarks/stream_breakdown.py: NDCG@10 per window split by the target item's age and
the user's tenure, recomputed here from the stream and the per-event gains."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lifelongrec.data import SyntheticWorld, prepare

WORLD = ["n_events=1500", "seed=3", "new_item_rate=0.3"]
SMALL = ["dim=8", "n_layers=1", "n_heads=1", "epochs=2", "text_encoder=tfidf"]
ARGS = ["--world", *WORLD, "--windows", "3", "--strategies", "static", "finetune"]
for p in SMALL:
    ARGS += ["--param", p]


@pytest.fixture(scope="module")
def run(benchmark_module, tmp_path_factory):
    path = tmp_path_factory.mktemp("breakdown") / "rows.json"
    with benchmark_module("stream_breakdown") as module:
        out = module.main([*ARGS, "--json", str(path)])
    return out, json.loads(path.read_text())


def test_groups_recombine_to_each_window_ndcg(run):
    out, saved = run
    assert saved["by_age"] == out["by_age"] and saved["by_tenure"] == out["by_tenure"]
    for rows in (out["by_age"], out["by_tenure"]):
        for name in ("static", "finetune"):
            for w, ndcg in enumerate(out["ndcg@10_per_window"][name], start=1):
                mine = [r for r in rows if r["window"] == w]
                assert sum(r["share"] for r in mine) == pytest.approx(1.0)
                # the share-weighted group means are the window's NDCG@10
                assert sum(r["share"] * r[name] for r in mine) == pytest.approx(ndcg)


def test_item_age_and_tenure_shares_match_the_stream(run):
    out, _ = run
    from lifelongrec.data import time_windows

    data = prepare(SyntheticWorld(n_events=1500, seed=3, new_item_rate=0.3).generate())
    windows = time_windows(data, 3)
    ev = data.events.sort_values("timestamp", kind="stable")
    first = ev.groupby("item_id")["timestamp"].min()
    for w in (1, 2):
        e = windows[w].events
        start, before = windows[w].meta["start"], windows[w - 1].meta["start"]
        seen = e["item_id"].map(first).to_numpy()
        new_share = float(np.mean(seen >= start))
        last_share = float(np.mean((seen < start) & (seen >= before)))
        got = {r["age"]: r["share"] for r in out["by_age"] if r["window"] == w}
        assert got.get("new", 0.0) == pytest.approx(new_share)
        assert got.get("last window", 0.0) == pytest.approx(last_share)
    # a model that never learns scores no item born after its fit
    assert all(r["static"] == 0.0 for r in out["by_age"] if r["age"] == "new")


@pytest.mark.parametrize(
    "bad",
    [
        [],  # neither --stream nor --world
        ["--stream", "train-small-10k", "--world", "n_events=100"],
        ["--stream", "no-such-stream"],
        ["--world", "n_events=100", "--strategies", "sometimes"],
    ],
)
def test_bad_arguments_are_refused(benchmark_module, bad, capsys):
    with benchmark_module("stream_breakdown") as module, pytest.raises(SystemExit):
        module.main(bad)
    assert "error:" in capsys.readouterr().err
