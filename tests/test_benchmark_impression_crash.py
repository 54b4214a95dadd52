"""benchmarks/impression_crash.py: a kill -9 of a real server, and the impression log
read back; its block and raw results."""

from __future__ import annotations

import json


def test_a_crash_loses_only_the_newest_answers(benchmark_module, tmp_path, monkeypatch):
    with benchmark_module("impression_crash") as crash, benchmark_module("_common") as common:
        monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
        monkeypatch.setattr(common, "RAW_DIR", tmp_path)
        argv = ["--crashes", "1", "--seconds", "2", "--clients", "2", "--model", "popularity"]
        assert crash.main([*argv, "--block", "t"]) == 0
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- impression-crash-t:begin -->" in text and "oldest lost" in text
    (run,) = json.loads((tmp_path / "impression-crash-t.json").read_text())["runs"]
    assert run["answers"] > 0 and 0 <= run["lost_answers"] <= run["answers"]
    assert run["oldest_lost_s"] < 5.0  # 1 s flushes: never seconds of answers
