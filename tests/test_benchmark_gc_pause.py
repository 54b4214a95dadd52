"""benchmarks/gc_pause.py: full collections of a started service, on a tiny home."""

from __future__ import annotations

import gc
import json

import pytest


def test_times_full_collections_before_and_after_freezing(benchmark_module, tmp_path, capsys):
    from lifelongrec.serving import RecommenderService

    config = {"model": "popularity", "synthetic_events": 1500, "background": False}
    home = tmp_path / "home"
    RecommenderService.open(home, data="synthetic", config=config).close()
    (tmp_path / "config.json").write_text(json.dumps(config))
    with benchmark_module("gc_pause") as module:
        out = module.main([str(home), "--config", str(tmp_path / "config.json"), "--repeat", "2"])
        with pytest.raises(SystemExit):
            module.parse_args([str(tmp_path)])  # no registry/ there
        with pytest.raises(SystemExit):
            module.parse_args([str(home), "--repeat", "0"])
    assert len(out["full_collection_ms"]) == len(out["full_collection_ms_frozen"]) == 2
    # the modules and the service are frozen: far fewer objects left to walk
    assert out["frozen_objects"] > 10_000 and out["tracked_objects"] > out["frozen_objects"] / 2
    assert out["tracked_after_freeze"] < out["tracked_objects"] / 10
    assert gc.get_freeze_count() == 0  # given back
    assert "after gc.freeze" in capsys.readouterr().out
