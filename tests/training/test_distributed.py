"""Data-parallel training under torchrun: two CPU processes (gloo) fit one model, every
process ends with the same weights, and the CLI writes results from rank 0 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lifelongrec.nn import Windows, is_main, shard, world

FIT = textwrap.dedent(
    """
    import hashlib, sys
    import torch
    from lifelongrec.data import synthetic
    from lifelongrec.models import SequentialRecommender
    from lifelongrec.nn import world

    torch.set_num_threads(1)
    model = SequentialRecommender(
        dim=16, n_layers=1, n_heads=1, max_len=8, epochs=3, batch_size=32,
        text_encoder=None, verbose=False, random_state=0, full_softmax_max_items=50,
    ).fit(synthetic(n_events=2000, seed=0))
    rank, size = world()
    weights = b"".join(p.detach().numpy().tobytes() for p in model.module_.parameters())
    with open(f"{sys.argv[1]}/rank{rank}", "w") as f:
        f.write(f"{size} {len(model.history_)} {hashlib.sha256(weights).hexdigest()}")
    """
)


def torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    return subprocess.run(
        [*cmd, "2", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def windows(n):
    z = np.zeros((n, 4), dtype=np.int64)
    return Windows(np.arange(n)[:, None] + z, z, z, z, z, z.astype(np.float32))


def test_shards_are_contiguous_blocks_that_cover_every_window_once():
    w = windows(11)
    parts = [shard(w, r, 3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 4, 4]
    assert np.concatenate([p.items[:, 0] for p in parts]).tolist() == list(range(11))
    assert all(p.target_ts is None for p in parts)


def test_alone_this_process_is_the_whole_world(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert world() == (0, 1) and is_main()
    monkeypatch.setenv("RANK", "1")
    assert not is_main()


@pytest.mark.skipif(sys.platform != "linux", reason="the gloo launcher is tested on Linux")
def test_two_processes_train_one_model_with_the_same_weights(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(FIT)
    done = torchrun(str(script), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    got = [(tmp_path / f"rank{r}").read_text().split() for r in range(2)]
    assert [g[0] for g in got] == ["2", "2"]  # each saw a world of two
    assert got[0][1] == got[1][1] and int(got[0][1]) >= 1  # the same early-stopping epochs
    assert got[0][2] == got[1][2]  # and the same weights: gradients were averaged


@pytest.mark.skipif(sys.platform != "linux", reason="the gloo launcher is tested on Linux")
def test_the_cli_under_torchrun_saves_and_prints_from_rank_zero_only(tmp_path):
    from lifelongrec.models import Recommender

    out = tmp_path / "model"
    args = ["-m", "lifelongrec.cli", "train", "--data", "synthetic", "--synthetic-events"]
    args += ["2000", "--model", "sequential", "--out", str(out), "--json"]
    for p in ("dim=16", "n_layers=1", "max_len=8", "epochs=2", "text_encoder=null"):
        args += ["--param", p]
    done = torchrun(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # one JSON document: the other rank printed nothing
    assert summary["out"] == str(out) and summary["model"] == "sequential"
    model = Recommender.load(out)
    ids, _ = model.recommend(str(model.known_users()[0]), k=5)
    assert len(ids) == 5
