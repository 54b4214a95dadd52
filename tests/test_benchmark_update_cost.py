"""benchmarks/update_cost.py: the budget's estimate against measured trainer seconds, on a
shortened train-family stream."""

from __future__ import annotations

import re


def test_reports_every_update_and_refit(benchmark_module, capsys):
    with benchmark_module("update_cost") as module:
        module.main(["--stream", "train-small-10k", "--events", "1500", "--windows", "3"])
    out = capsys.readouterr().out
    first = int(re.search(r"first fit (\d+) epochs", out).group(1))
    assert first >= 1
    num = r"([\d.]+)"
    updates = re.findall(rf"^\| (\d) \| (\d+) \| {num} \| {num} \| {num} \|$", out, re.M)
    refits = re.findall(rf"^\| (\d) \| (\d+) \| {num} \| {num} \| {num} \| {num} % \|$", out, re.M)
    # two updates, then two refits, each with a positive time per estimated GFLOP
    assert [u[0] for u in updates] == ["1", "2"]
    assert [r[0] for r in refits] == ["1", "2"]
    assert all(int(u[1]) >= 1 and float(u[3]) > 0 and float(u[4]) > 0 for u in updates)
    assert all(int(r[1]) >= 1 and float(r[3]) > 0 and float(r[4]) > 0 for r in refits)
    # the share column is the update's CPU over the refit's, as printed (rounding aside)
    for u, r in zip(updates, refits, strict=True):
        expected = 100 * float(u[4]) / float(r[4])
        assert abs(float(r[5]) - expected) <= 0.06 * expected + 0.1


def test_param_sets_the_model_of_both_sides(benchmark_module, capsys):
    # a vanishing budget without catch-up buys the least an update takes: one pass
    args = ["--stream", "train-small-10k", "--events", "1500", "--windows", "3"]
    args += ["--param", "partial_fit_budget=1e-9", "--param", "partial_fit_catchup=0"]
    with benchmark_module("update_cost") as module:
        module.main(args)
    out = capsys.readouterr().out
    updates = re.findall(r"^\| (\d) \| (\d+) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M)
    assert [u[1] for u in updates] == ["1", "1"]
