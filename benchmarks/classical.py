"""Benchmark every classical recommender on the real datasets in ../shared/data.

Leave-one-out, full ranking, K=10. Each (dataset, model) pair runs in its own process
(`lifelongrec evaluate --json`) so that peak memory (max RSS) is measured per pair.
Writes the table to docs/benchmarks.md between markers, and the raw JSON beside it.

    .venv/bin/python benchmarks/classical.py            # all datasets, all models
    .venv/bin/python benchmarks/classical.py --datasets ml-100k --models ease als
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    "ml-100k": SHARED / "ml-100k",
    "ml-latest-small": SHARED / "ml-latest-small",
    "beauty": SHARED / "bert4rec-beauty",
    "amazon-all-beauty": SHARED / "amazon-2018-all-beauty-5core",
}
MODELS = ["popularity", "itemknn", "userknn", "ease", "als", "bpr", "content", "hybrid"]
METRICS = ["hr@10", "ndcg@10", "recall@10", "precision@10", "mrr@10", "map@10", "coverage@10"]
# Datasets without item content (no titles or categories): the default hybrid blends in
# the content model, so there it blends two collaborative models instead, and says so.
NO_CONTENT = {"beauty", "amazon-all-beauty"}
HYBRID_WITHOUT_CONTENT = ["--param", "components=('ease', 'als')", "--param", "weights=(0.5, 0.5)"]
BEGIN, END = "<!-- classical:begin -->", "<!-- classical:end -->"


def run_one(dataset: str, model: str, timeout: int) -> dict:
    cmd = [
        str(ROOT / ".venv" / "bin" / "lifelongrec"),
        "evaluate",
        "--data",
        str(DATASETS[dataset]),
        "--model",
        model,
        "--protocol",
        "loo",
        "--k",
        "10",
        "--json",
    ]
    label = model
    if model == "hybrid" and dataset in NO_CONTENT:
        cmd += HYBRID_WITHOUT_CONTENT
        label = "hybrid (ease+als)"
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"model": model, "dataset": dataset, "note": f"timeout after {timeout} s"}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        last = (err.strip().splitlines() or ["?"])[-1]
        return {
            "model": model,
            "dataset": dataset,
            "note": f"n/a: {last[:160]}",
            "wall_seconds": wall,
        }
    res = json.loads(out)
    res["model"] = label
    res["model_name"] = model
    res["dataset"] = dataset
    res["wall_seconds"] = wall
    return res


def run_one_measured(dataset: str, model: str, timeout: int) -> dict:
    """Run in a forked child so os.wait4 gives that child's own peak RSS."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run the pair, send the JSON back
        os.close(r)
        res = run_one(dataset, model, timeout)
        with os.fdopen(w, "w") as fh:
            fh.write(json.dumps(res, default=str))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        payload = fh.read()
    _, _, usage = os.wait4(pid, 0)
    res = json.loads(payload)
    # ru_maxrss of the fork = max over it and its reaped children (the evaluate process).
    res["peak_rss_mb"] = usage.ru_maxrss / 1024.0
    return res


def table(results: list[dict]) -> str:
    cols = ["dataset", "model", *METRICS, "fit_seconds", "recommend_seconds", "peak_rss_mb"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        if "note" in r:
            lines.append(
                f"| {r['dataset']} | {r['model']} | " + r["note"] + " |" + " |" * (len(cols) - 3)
            )
            continue
        cells = [r["dataset"], r["model"]]
        cells += [f"{r[m]:.4f}" for m in METRICS]
        cells += [
            f"{r['fit_seconds']:.2f}",
            f"{r['recommend_seconds']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(results: list[dict], commands: list[str]) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    import implicit
    import numpy  # noqa: E401  versions for the record
    import scipy
    import torch

    block = "\n".join(
        [
            BEGIN,
            "## Classical recommenders: leave-one-out, full ranking, K=10",
            "",
            "Commands (run in this order; `--merge` reruns replace only their rows):",
            "",
            *[f"    {c}" for c in commands],
            "",
            f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, numpy {numpy.__version__}, "
            f"scipy {scipy.__version__}, implicit {implicit.__version__}, torch {torch.__version__}; "
            f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
            "Protocol: events sorted by time (stable), one event per (user, item) pair kept (the first), "
            "each user's last event is the test item, the one before it validation (classical models "
            "fit on train + validation); every item in the catalogue is ranked, items the user already "
            "has are excluded. `peak_rss_mb` is the evaluating process's maximum resident memory, "
            "loading included. Default hyperparameters.",
            "",
            table(results),
            "",
            "Raw results: `docs/benchmarks/classical.json`.",
            END,
        ]
    )
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)
    raw = ROOT / "docs" / "benchmarks" / "classical.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps({"commands": commands, "results": results}, indent=2, default=str))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per (dataset, model)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="replace only these (dataset, model) rows in docs/benchmarks/classical.json",
    )
    args = ap.parse_args()
    missing = [d for d in args.datasets if not DATASETS[d].exists()]
    if missing:
        sys.exit(f"datasets not found under {SHARED}: {missing}")
    results = []
    for dataset in args.datasets:
        for model in args.models:
            res = run_one_measured(dataset, model, args.timeout)
            results.append(res)
            shown = (
                res.get("note")
                or f"ndcg@10={res['ndcg@10']:.4f} hr@10={res['hr@10']:.4f} fit={res['fit_seconds']:.1f}s"
            )
            print(
                f"{dataset:18s} {model:11s} {shown} peak={res.get('peak_rss_mb', 0):.0f}MB",
                flush=True,
            )
    command = ".venv/bin/python benchmarks/classical.py " + " ".join(sys.argv[1:])
    commands = [command]
    if args.merge:
        raw = ROOT / "docs" / "benchmarks" / "classical.json"

        def key(r: dict) -> tuple[str, str]:
            return r["dataset"], r.get("model_name", r["model"])

        fresh = {key(r): r for r in results}
        saved = json.loads(raw.read_text()) if raw.exists() else {}
        old = saved.get("results", [])
        commands = [*saved.get("commands", []), command]
        merged = [fresh.pop(key(r), r) for r in old]
        results = merged + list(fresh.values())
    print(table(results))
    if not args.no_write:
        write_docs(results, commands)


if __name__ == "__main__":
    main()
