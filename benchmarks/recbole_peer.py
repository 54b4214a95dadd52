"""A peer side by side: RecBole 1.2.1's SASRec and GRU4Rec on OUR leave-one-out split.

Runs with our interpreter; RecBole lives in its own virtual environment
(``benchmarks/_work/recbole-venv``, created here on first use; never in ``.venv``).

1. Our code loads a dataset, prepares it as ``lifelongrec evaluate`` does (stable time
   order, first of each (user, item) pair) and splits it with ``leave_one_out``.
2. The split is written as RecBole benchmark atomic files under
   ``benchmarks/_work/recbole-data/<name>-loo/``: ``<name>-loo.train.inter`` (every prefix of each
   user's training sequence -> next training item, the augmentation RecBole itself does),
   ``<name>-loo.valid.inter`` (train sequence -> validation item) and ``<name>-loo.test.inter``
   (train + validation sequence -> test item); columns ``user_id:token
   item_id_list:token_seq item_id:token timestamp:float`` (histories cut to the last
   ``--max-len`` items), plus ``history.tsv`` (the full per-user split, for masking).
3. ``benchmarks/recbole_runner.py`` runs one model in the RecBole venv (``nice -n 10``),
   early-stopping on validation NDCG@10, and tests the best-validation model; the split
   RecBole actually loaded is checked against ours (test-user count, a few users' train
   sequences and targets).
4. Results go to ``docs/benchmarks/recbole.json`` (merged by dataset and model) and a
   table is printed. See ``docs/recbole.md``.

    .venv/bin/python benchmarks/recbole_peer.py --datasets ml-100k --models SASRec GRU4Rec
    .venv/bin/python benchmarks/recbole_peer.py --datasets beauty --epochs 3
    .venv/bin/python benchmarks/recbole_peer.py --setup-only      # venv + data files only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "_work"
VENV = WORK / "recbole-venv"
VENV_PY = VENV / "bin" / "python"
DATA_OUT = WORK / "recbole-data"
RUNNER = ROOT / "benchmarks" / "recbole_runner.py"
RESULTS = ROOT / "docs" / "benchmarks" / "recbole.json"
DATASETS = {
    "ml-100k": SHARED / "ml-100k",
    "beauty": SHARED / "bert4rec-beauty",
    "ml-latest-small": SHARED / "ml-latest-small",
}
# Always pinned together: the local CPU wheel of torch; a bare torch pulls a CUDA build.
REQUIREMENTS = ["recbole==1.2.1", "torch==2.13.0", "pandas<3"]
CHECK_USERS = 5


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_venv(reinstall: bool = False) -> dict[str, str]:
    """Create the RecBole venv if needed; return the versions pip lists there."""
    ok = (
        VENV_PY.exists()
        and subprocess.run(
            [
                str(VENV_PY),
                "-c",
                "import importlib.metadata as m; assert m.version('recbole') == '1.2.1'; "
                "assert int(m.version('pandas').split('.')[0]) < 3; assert m.version('torch').startswith('2.13.0')",
            ],
            capture_output=True,
        ).returncode
        == 0
    )
    if not ok or reinstall:
        WORK.mkdir(parents=True, exist_ok=True)
        if not VENV_PY.exists():
            sh(["python3", "-m", "venv", str(VENV)])
        sh(["nice", "-n", "10", str(VENV / "bin" / "pip"), "install", *REQUIREMENTS])
    listed = subprocess.run(
        [str(VENV / "bin" / "pip"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    if not versions.get("torch", "").startswith("2.13.0"):
        raise SystemExit(
            f"recbole venv has torch {versions.get('torch')!r}, expected 2.13.0 (+cpu)"
        )
    cuda = sorted(n for n in versions if n.startswith("nvidia-"))
    if cuda:
        raise SystemExit(
            f"recbole venv pulled CUDA packages {cuda}; reinstall with torch==2.13.0 pinned"
        )
    return versions


# ----------------------------------------------------------------------- data
def our_split(name: str):
    from lifelongrec.data import leave_one_out, load, prepare

    dataset = prepare(load(DATASETS[name]))
    return dataset, leave_one_out(dataset)


def per_user(split) -> dict[str, tuple[list[str], list[int], str | None, str | None, int, int]]:
    """user -> (train items, train timestamps, valid item, test item, valid ts, test ts)."""
    users: dict[str, list] = {}
    tr = split.train.events
    for u, i, t in zip(
        tr["user_id"].tolist(), tr["item_id"].tolist(), tr["timestamp"].tolist(), strict=True
    ):
        rec = users.setdefault(u, [[], [], None, None, 0, 0])
        rec[0].append(i)
        rec[1].append(t)
    for col, part in ((2, split.valid.events), (3, split.test.events)):
        for u, i, t in zip(
            part["user_id"].tolist(),
            part["item_id"].tolist(),
            part["timestamp"].tolist(),
            strict=True,
        ):
            rec = users.setdefault(u, [[], [], None, None, 0, 0])
            rec[col], rec[col + 2] = i, t
    return {u: tuple(v) for u, v in users.items()}


def rb_token(name: str) -> str:
    """RecBole's dataset token. Not the bare name: RecBole's Config replaces data_path by
    its bundled example for a dataset called exactly 'ml-100k'."""
    return f"{name}-loo"


def write_atomic(name: str, split, max_len: int) -> dict:
    users = per_user(split)
    name = rb_token(name)
    for u, (train, _, valid, test, _, _) in users.items():
        for token in [u, *train, valid or "", test or ""]:
            if any(c.isspace() for c in token):
                raise SystemExit(
                    f"{name}: id {token!r} holds whitespace; RecBole token_seq splits on spaces"
                )
    out = DATA_OUT / name
    out.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float\n"
    counts = {"train": 0, "valid": 0, "test": 0}
    with (
        open(out / f"{name}.train.inter", "w", encoding="utf-8") as ftr,
        open(out / f"{name}.valid.inter", "w", encoding="utf-8") as fva,
        open(out / f"{name}.test.inter", "w", encoding="utf-8") as fte,
        open(out / "history.tsv", "w", encoding="utf-8") as fh,
    ):
        for f in (ftr, fva, fte):
            f.write(header)
        fh.write("user_id\ttrain\tvalid\ttest\n")
        for u, (train, ts, valid, test, vts, tts) in users.items():
            fh.write(f"{u}\t{' '.join(train)}\t{valid or ''}\t{test or ''}\n")
            for j in range(1, len(train)):  # RecBole's own augmentation, done here
                hist = train[max(0, j - max_len) : j]
                ftr.write(f"{u}\t{' '.join(hist)}\t{train[j]}\t{ts[j]}\n")
                counts["train"] += 1
            if valid is not None:
                fva.write(f"{u}\t{' '.join(train[-max_len:])}\t{valid}\t{vts}\n")
                counts["valid"] += 1
            if test is not None:
                seq = train + ([valid] if valid is not None else [])
                if seq:
                    fte.write(f"{u}\t{' '.join(seq[-max_len:])}\t{test}\t{tts}\n")
                    counts["test"] += 1
    (out / "meta.json").write_text(
        json.dumps({"max_len": max_len, "rows": counts, "split": split.meta}, indent=1)
    )
    return {"users": users, "rows": counts}


def verify(name: str, users: dict, meta: dict, rows: dict, result: dict, max_len: int) -> dict:
    """Compare what RecBole loaded with our split."""
    problems = []
    if result["n_test_rows"] != meta["users_with_test"]:
        problems.append(
            f"test rows {result['n_test_rows']} != our users_with_test {meta['users_with_test']}"
        )
    if result["n_valid_rows"] != meta["users_with_valid"]:
        problems.append(
            f"valid rows {result['n_valid_rows']} != our users_with_valid {meta['users_with_valid']}"
        )
    expected_train = sum(max(0, len(v[0]) - 1) for v in users.values())
    if result["n_train_targets"] != expected_train:
        problems.append(f"train targets {result['n_train_targets']} != {expected_train}")
    checked = []
    for user, view in result["check_users"].items():
        train, _, valid, test, _, _ = users[user]
        if view is None:
            problems.append(f"user {user} missing in RecBole")
            continue
        # train: the targets in file order are our train sequence after its first item,
        # each with the (cut) prefix before it
        want_train = [[train[max(0, j - max_len) : j], train[j]] for j in range(1, len(train))]
        # as sets of (prefix, target) rows: the prefixes fix the order of the targets
        if sorted(map(json.dumps, view["train"])) != sorted(map(json.dumps, want_train)):
            problems.append(f"user {user}: train rows differ")
        want_valid = [[train[-max_len:], valid]] if valid is not None else []
        if view["valid"] != want_valid:
            problems.append(f"user {user}: valid row differs")
        seq = train + ([valid] if valid is not None else [])
        want_test = [[seq[-max_len:], test]] if test is not None else []
        if view["test"] != want_test:
            problems.append(f"user {user}: test row differs")
        checked.append({"user": user, "n_train": len(train), "valid": valid, "test": test})
    return {
        "ok": not problems,
        "problems": problems,
        "users_checked": checked,
        "test_rows": result["n_test_rows"],
        "our_users_with_test": meta["users_with_test"],
    }


# ------------------------------------------------------------------------ run
def run_model(name: str, model: str, args, users_to_check: list[str]) -> dict:
    out_json = WORK / "recbole-results" / f"{name}-{model}.json"
    log = WORK / "recbole-logs" / f"{name}-{model}.log"
    for d in (out_json.parent, log.parent, WORK / "recbole-run"):
        d.mkdir(parents=True, exist_ok=True)
    cmd = [
        "nice",
        "-n",
        str(args.nice),
        str(VENV_PY),
        str(RUNNER),
        "--data-path",
        str(DATA_OUT),
        "--dataset",
        rb_token(name),
        "--model",
        model,
        "--out",
        str(out_json),
        "--checkpoint-dir",
        str(WORK / "recbole-saved"),
        "--hidden-size",
        str(args.hidden_size),
        "--inner-size",
        str(args.inner_size),
        "--layers",
        str(args.layers),
        "--gru-layers",
        str(args.gru_layers),
        "--heads",
        str(args.heads),
        "--dropout",
        str(args.dropout),
        "--attn-dropout",
        str(args.attn_dropout),
        "--max-len",
        str(args.max_len),
        "--epochs",
        str(args.epochs),
        "--stopping-step",
        str(args.stopping_step),
        "--batch-size",
        str(args.batch_size),
        "--eval-batch-size",
        str(args.eval_batch_size),
        "--lr",
        str(args.lr),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
        "--check-users",
        *users_to_check,
    ]
    if args.time_budget is not None:
        cmd += ["--time-budget", str(args.time_budget)]
    if not args.mask_history:
        cmd += ["--no-mask-history"]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        # cwd: RecBole writes ./log/ and ./log_tensorboard/ relative to it
        proc = subprocess.run(cmd, cwd=WORK / "recbole-run", stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        return {
            "dataset": name,
            "model": model,
            "note": f"failed (rc {proc.returncode}): {' | '.join(tail)}",
        }
    res = json.loads(out_json.read_text())
    res["dataset"] = name
    res["wall_seconds_incl_startup"] = wall
    res["command"] = " ".join(map(str, cmd))
    return res


COLUMNS = [
    "dataset",
    "model",
    "hr@10",
    "ndcg@10",
    "recall@10",
    "native_hr@10",
    "native_ndcg@10",
    "epochs",
    "best",
    "stop",
    "s/epoch",
    "cpu s/epoch",
    "s/1k targets",
    "valid s/epoch",
    "total s",
]


def row(r: dict) -> list[str]:
    if "note" in r:
        return [r["dataset"], r["model"], r["note"]]
    t, n = r["test"], r["test_native"]
    return [
        r["dataset"],
        r["model"],
        f"{t['hit@10']:.4f}",
        f"{t['ndcg@10']:.4f}",
        f"{t['recall@10']:.4f}",
        f"{n['hit@10']:.4f}",
        f"{n['ndcg@10']:.4f}",
        f"{r['epochs_run']}/{r['epoch_cap']}",
        str(r["best_epoch"]),
        r["stopped_by"],
        f"{r['mean_train_seconds_per_epoch']:.1f}",
        f"{r['mean_train_cpu_seconds_per_epoch']:.1f}",
        f"{r['train_seconds_per_1k_targets']:.3f}",
        f"{r['mean_valid_seconds_per_epoch']:.1f}",
        f"{r['total_seconds']:.0f}",
    ]


def print_table(results: list[dict]) -> None:
    body = [row(r) for r in results]
    widths = [
        max([len(c)] + [len(b[i]) for b in body if i < len(b) and len(b) > 3])
        for i, c in enumerate(COLUMNS)
    ]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print("  ".join(v.ljust(w) for v, w in zip(b, widths, strict=False)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["ml-100k"], choices=list(DATASETS))
    p.add_argument(
        "--models", nargs="+", default=["SASRec", "GRU4Rec"], choices=["SASRec", "GRU4Rec"]
    )
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--inner-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=2, help="SASRec transformer layers")
    p.add_argument("--gru-layers", type=int, default=1, help="GRU4Rec layers (RecBole default 1)")
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--attn-dropout", type=float, default=0.2)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--epochs", type=int, default=200, help="epoch cap")
    p.add_argument("--stopping-step", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2048, help="RecBole default train_batch_size")
    p.add_argument("--eval-batch-size", type=int, default=4096, help="RecBole default")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="stop before a new epoch after this many seconds of train+valid",
    )
    p.add_argument("--nice", type=int, default=10)
    p.add_argument(
        "--no-mask-history",
        dest="mask_history",
        action="store_false",
        help="RecBole's native ranking (earlier items of the user not excluded)",
    )
    p.add_argument("--setup-only", action="store_true", help="venv and data files only")
    p.add_argument("--reinstall", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    versions = ensure_venv(args.reinstall)
    print(
        "recbole venv:",
        {k: versions.get(k) for k in ("recbole", "torch", "numpy", "pandas", "scipy", "ray")},
    )
    results = []
    for name in args.datasets:
        t0 = time.perf_counter()
        dataset, split = our_split(name)
        written = write_atomic(name, split, args.max_len)
        print(
            f"{name}: {len(dataset.events)} events, split {split.meta}, rows written {written['rows']} "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
        if args.setup_only:
            continue
        users = written["users"]
        with_test = sorted(u for u, v in users.items() if v[3] is not None)
        step = max(1, len(with_test) // CHECK_USERS)
        check = with_test[::step][:CHECK_USERS]
        for model in args.models:
            res = run_model(name, model, args, check)
            if "note" not in res:
                res["split_check"] = verify(
                    name, users, split.meta, written["rows"], res, args.max_len
                )
                res["our_split"] = {k: v for k, v in split.meta.items() if k != "rule"}
                res["preprocessing"] = dataset.report.entries
                del res["check_users"]
                if not res["split_check"]["ok"]:
                    print(
                        f"SPLIT MISMATCH {name} {model}: {res['split_check']['problems']}",
                        file=sys.stderr,
                    )
            res["pip_versions"] = {
                k: versions.get(k)
                for k in (
                    "recbole",
                    "torch",
                    "numpy",
                    "pandas",
                    "scipy",
                    "ray",
                    "thop",
                    "colorlog",
                    "colorama",
                    "texttable",
                    "tensorboard",
                    "scikit-learn",
                )
            }
            results.append(res)
            print_table([res])
    if args.setup_only:
        return 0
    previous = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    keep = [
        r
        for r in previous["runs"]
        if (r["dataset"], r["model"]) not in {(x["dataset"], x["model"]) for x in results}
    ]
    merged = {
        "command": "benchmarks/recbole_peer.py (see each run's command)",
        "runs": keep + results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged, indent=1, default=str))
    print()
    print_table(merged["runs"])
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
