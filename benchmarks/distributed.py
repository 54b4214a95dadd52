"""Data-parallel training under torchrun against one process: accuracy and seconds.

For each seed, ``lifelongrec evaluate --data DATA --model sequential --json --param
random_state=SEED`` (leave-one-out, full ranking; the sequential model's defaults) runs
once as one process with ``--threads`` torch threads and once under ``torchrun
--standalone --nproc-per-node N`` with ``threads / N`` threads per process, so both use
the same cores. Under torchrun the fit is data-parallel (``lifelongrec.nn._distributed``:
each process trains on its block of the training windows with ``1/N`` of the batch,
gradients averaged by ``DistributedDataParallel``, gloo on CPU); validation, early
stopping and the test evaluation run in every process alike, and rank 0 reports.

Reported per seed and setting: test NDCG@10 and HR@10, fit seconds, epochs run, and
training seconds per epoch (the mean of the model's own ``train_seconds`` per epoch, the
validation ranking left out), then the mean ± sample std over seeds and the speed-up of
an epoch's training.

    .venv/bin/python benchmarks/distributed.py                  # ml-100k, seeds 0 1 2, N=2
    .venv/bin/python benchmarks/distributed.py --seeds 0 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATASETS, command_line, fmt, md_table, write_block  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="ml-100k", choices=sorted(DATASETS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--procs", type=int, default=2, help="processes under torchrun")
    p.add_argument("--threads", type=int, default=2, help="torch threads in all")
    p.add_argument("--param", action="append", default=[], help="more model settings, K=V")
    p.add_argument("--no-write", action="store_true", help="print only")
    return p


def evaluate(args: argparse.Namespace, seed: int, procs: int) -> dict[str, Any]:
    """One ``lifelongrec evaluate`` run (under torchrun with ``procs`` > 1)."""
    cli = ["-m", "lifelongrec.cli", "evaluate", "--data", str(DATASETS[args.data])]
    cli += ["--model", "sequential", "--json", "--param", f"random_state={seed}"]
    for p in args.param:
        cli += ["--param", p]
    launch = [sys.executable]
    if procs > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // procs))}
    done = subprocess.run([*launch, *cli], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}, {procs} process(es) failed:\n{done.stderr[-4000:]}")
    out = json.loads(done.stdout)
    history = out.get("history") or []
    train_s = [h["train_seconds"] for h in history if "train_seconds" in h]
    row = {
        "seed": seed,
        "procs": procs,
        "threads_per_proc": max(1, args.threads // procs),
        "ndcg@10": out["ndcg@10"],
        "hr@10": out["hr@10"],
        "fit_seconds": out["fit_seconds"],
        "epochs": len(history),
        "train_s_per_epoch": float(np.mean(train_s)) if train_s else None,
    }
    print(
        f"seed {seed}, {procs} process(es): NDCG@10 {row['ndcg@10']:.4f}, HR@10 "
        f"{row['hr@10']:.4f}, fit {row['fit_seconds']:.1f} s, {row['epochs']} epochs, "
        f"{row['train_s_per_epoch']:.2f} s/epoch",
        flush=True,
    )
    return row


def mean_std(values: list[float], digits: int = 4) -> str:
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return f"{a.mean():.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    rows = [evaluate(args, s, n) for s in args.seeds for n in (1, args.procs)]
    out = {"settings": vars(args), "results": rows}
    if args.no_write:
        return out
    summary = []
    for n in (1, args.procs):
        mine = [r for r in rows if r["procs"] == n]
        summary.append(
            {
                "setting": f"{n} process(es) x {mine[0]['threads_per_proc']} thread(s)",
                "ndcg": mean_std([r["ndcg@10"] for r in mine]),
                "hr": mean_std([r["hr@10"] for r in mine]),
                "fit": mean_std([r["fit_seconds"] for r in mine], 1),
                "epochs": mean_std([r["epochs"] for r in mine], 1),
                "epoch_s": mean_std([r["train_s_per_epoch"] for r in mine], 2),
            }
        )
    one = np.mean([r["train_s_per_epoch"] for r in rows if r["procs"] == 1])
    many = np.mean([r["train_s_per_epoch"] for r in rows if r["procs"] == args.procs])
    cols = [
        ("setting", "setting", 0),
        ("ndcg", "test NDCG@10", 0),
        ("hr", "test HR@10", 0),
        ("fit", "fit s", 0),
        ("epochs", "epochs", 0),
        ("epoch_s", "train s/epoch", 0),
    ]
    per_run = [
        ("seed", "seed", 0),
        ("procs", "processes", 0),
        ("ndcg@10", "NDCG@10", 4),
        ("hr@10", "HR@10", 4),
        ("fit_seconds", "fit s", 1),
        ("epochs", "epochs", 0),
        ("train_s_per_epoch", "train s/epoch", 2),
    ]
    body = [
        f"Protocol: `lifelongrec evaluate --data {args.data} --model sequential` "
        "(leave-one-out, full ranking, the sequential model's defaults"
        f"{', ' + ' '.join(args.param) if args.param else ''}) per seed (`random_state`), "
        f"as one process with {args.threads} torch threads and under `torchrun "
        f"--standalone --nproc-per-node {args.procs}` with "
        f"{max(1, args.threads // args.procs)} each (data-parallel: each process trains "
        f"its block of the training windows with 1/{args.procs} of the batch, gradients "
        "averaged by DistributedDataParallel over gloo; validation and early stopping in "
        "every process alike). Seeds "
        f"{args.seeds}; mean ± sample std.",
        "",
        md_table(summary, cols),
        "",
        f"Training seconds per epoch, {args.procs} processes against one: "
        f"{fmt(one / many, 2)}x faster (validation ranking, run by every process, left out).",
        "",
        md_table(rows, per_run),
    ]
    title = f"Data-parallel training under torchrun ({args.data})"
    write_block(args.data, title, command_line("distributed.py", argv), body, out, "distributed")
    return out


if __name__ == "__main__":
    main()
