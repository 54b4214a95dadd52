"""benchmarks/transition_drift.py: successor counts of the latest window against older ones."""

from __future__ import annotations

import pytest

from lifelongrec.data import Dataset, make_events


def _switching_stream() -> Dataset:
    """8 windows of 10 one-off users each viewing ``a`` then ``b``; from window 6 on
    they view ``a`` then ``c``."""
    users, items = [], []
    for w in range(8):
        for j in range(10):
            users += [f"u{w}_{j}"] * 2
            items += ["a", "b" if w < 6 else "c"]
    return Dataset(events=make_events(users, items, list(range(len(users))), "view"), name="s")


def test_hit_rates_of_latest_and_older_successors(benchmark_module, capsys):
    with benchmark_module("transition_drift") as module:
        out = module.measure(_switching_stream(), 8)
        # windows 2..7: the latest window's successor of a (b, then c from window 7's
        # view of window 6) hits in 2-5 and 7; the older windows' (always b) in 2-5
        assert out["latest"] == pytest.approx(5 / 6)
        assert out["older"] == pytest.approx(4 / 6)
        assert out["all"] == pytest.approx(5 / 6)  # window 7: c is in the top 10 with b
        # popularity: window 7 views a and c; window 6's top 10 holds both, the older
        # windows' a and b
        assert out["pop latest"] == pytest.approx((4 * 1.0 + 0.5 + 1.0) / 6)
        assert out["pop older"] == pytest.approx((4 * 1.0 + 0.5 + 0.5) / 6)
        assert module.main(["--streams", "train-small-10k", "--windows", "4"]) == 0
        for bad in (["--streams", "nope"], ["--windows", "2", "--streams", "train-small-10k"], []):
            with pytest.raises(SystemExit):
                module.main(bad)
    table = capsys.readouterr().out
    assert "| train-small-10k |" in table and "latest / older" in table


def test_per_window_ratios_are_the_strategy_s(benchmark_module, capsys):
    with benchmark_module("transition_drift") as module:
        # windows 2-5: both tables predict b (1.0); 6: c, which neither has (–);
        # 7: c, which only the latest (window 6) has (inf)
        ratios = module.per_window(_switching_stream(), 8)
        assert ratios == [None, None, 1.0, 1.0, 1.0, 1.0, None, float("inf")]
        assert module.main(["--per-window", "--streams", "train-small-10k", "--windows", "4"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("train-small-10k – – ") and len(line.split()) == 5
