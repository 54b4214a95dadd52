"""benchmarks/restart.py: a profiled start of an existing home, on a tiny one."""

from __future__ import annotations

import json


def test_profiles_a_start_and_names_its_parts(benchmark_module, tmp_path, capsys):
    from lifelongrec.serving import RecommenderService

    config = {
        "model": "sequential",
        "model_params": {"dim": 8, "n_layers": 1, "max_len": 8, "epochs": 1, "verbose": False},
        "synthetic_events": 1500,
        "background": False,
    }
    home = tmp_path / "home"
    RecommenderService.open(home, data="synthetic", config=config).close()
    (tmp_path / "config.json").write_text(json.dumps(config))
    with benchmark_module("restart") as module:
        out = module.main([str(home), "--config", str(tmp_path / "config.json")])
    assert out["open_seconds"] > 0
    parts = out["parts"]
    assert set(parts) == set(module.PARTS)
    # the parts every start has ran (background=False: the trainer is copied here);
    # a fresh home has no items the model lacks and no events to catch up with
    ran = ["load the champion from the registry", "read the catalogue from the store"]
    ran += ["the retrieval index (read back or built)", "the learner's copy of the model"]
    assert all(parts[p] > 0 for p in ran), parts
    assert parts["read the items the model lacks"] == 0, parts
    assert sum(parts.values()) <= out["open_seconds"] * 1.5
    assert "read the catalogue from the store" in capsys.readouterr().out
    assert home.exists() and not list(tmp_path.glob("tmp*"))  # the copy is gone
