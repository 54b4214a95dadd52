"""Issue 17: the impression log's loss window on a crash, measured.

A real server (``lifelongrec serve`` in a subprocess, on a copy of a home folder trained
once on the built-in synthetic shop) answers recommendation requests from ``--clients``
threads at ``--rate`` requests/s in all (default 200, the load test's rate; 0: as fast
as it answers, which saturates a 2-core machine); after ``--seconds`` it is killed with
``kill -9``. The
impression log is then read back: every answer whose impressions are missing is lost,
and its age at the kill (seconds between its answer reaching the client and the kill)
says how far back the loss reaches. Repeated ``--crashes`` times; the service's
``impression_flush_seconds`` (default 1 s) is the window the docs state.

Writes the ``impression-crash-<block>`` block of docs/benchmarks.md and its raw JSON.

    .venv/bin/python benchmarks/impression_crash.py
    .venv/bin/python benchmarks/impression_crash.py --rate 0 --block saturated
    # smoke test:
    .venv/bin/python benchmarks/impression_crash.py --crashes 1 --seconds 3 --no-write
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common
import httpx
import numpy as np
from _common import command_line, free_port, md_table
from _load_client import Server

from lifelongrec.data import EventStore
from lifelongrec.serving import RecommenderService


def crash_once(
    base: Path, work: Path, config: dict, seconds: float, clients: int, rate: float
) -> dict:
    home = work / "run"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(base, home)
    port = free_port()
    server = Server(home, config, port, work / "server.log")
    server.start(timeout=300)
    proc = server.proc
    answered: list[tuple[str, float, int]] = []
    stop = threading.Event()

    def client(c: int) -> None:
        gap = clients / rate if rate > 0 else 0.0  # each client's share of the rate
        due = time.monotonic() + c * gap / clients
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            n = c
            while not stop.is_set():
                if gap:
                    due += gap
                    time.sleep(max(due - time.monotonic(), 0.0))
                try:
                    r = http.get(f"/users/u{n % 500:05d}/recommendations", params={"k": 10})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    body = r.json()
                    answered.append((body["request_id"], time.monotonic(), len(body["items"])))
                n += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    server.stop()  # the process is gone: closes its log
    stop.set()
    for t in threads:
        t.join()
    answered = [a for a in answered if a[1] <= killed_at]
    with EventStore(home / "events.sqlite") as store:
        stored = store.impressions()
    per_request = stored.groupby("request_id").size().to_dict() if len(stored) else {}
    lost = [(rid, t) for rid, t, k in answered if k and per_request.get(rid, 0) != k]
    ages = [killed_at - t for _, t in lost]
    return {
        "answers": len(answered),
        "answers_per_second": len(answered) / seconds,
        "lost_answers": len(lost),
        "lost_share": len(lost) / max(len(answered), 1),
        "oldest_lost_s": max(ages) if ages else 0.0,
        "newest_stored_s": min(
            (killed_at - t for rid, t, k in answered if per_request.get(rid, 0) == k),
            default=None,
        ),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--crashes", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0, help="traffic before each kill")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument(
        "--rate", type=float, default=200.0, help="requests/s in all (0: as fast as they can)"
    )
    ap.add_argument("--model", default="sequential", help="the service's model")
    ap.add_argument("--block", default="default")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = work / "base"
        config = {"background": False, "model": args.model}
        RecommenderService.open(base, "synthetic", config).close()
        runs = []
        for c in range(args.crashes):
            runs.append(
                {
                    "crash": c,
                    **crash_once(base, work, config, args.seconds, args.clients, args.rate),
                }
            )
            print(runs[-1], flush=True)
    oldest = max(r["oldest_lost_s"] for r in runs)
    lost = [r["lost_answers"] for r in runs]
    print(f"oldest lost answer {oldest:.2f} s before the kill; lost answers {lost}")
    if args.no_write:
        return 0
    body = [
        f"{args.crashes} crashes, each after {args.seconds:g} s of recommendation requests "
        + (f"at {args.rate:g}/s " if args.rate > 0 else "as fast as they are answered ")
        + f"from {args.clients} client threads (k=10) against `lifelongrec serve` (model "
        f"`{args.model}`) on the built-in synthetic shop, impression logging on with its "
        "defaults "
        "(`impression_flush_seconds` 1).",
        "",
        md_table(
            runs,
            [
                ("crash", "crash", 0),
                ("answers", "answers", 0),
                ("answers_per_second", "answers/s", 0),
                ("lost_answers", "answers without impressions", 0),
                ("lost_share", "share lost", 3),
                ("oldest_lost_s", "oldest lost: s before the kill", 2),
                ("newest_stored_s", "newest stored: s before the kill", 2),
            ],
        ),
        "",
        f"Over {args.crashes} crashes, **the oldest answer whose impressions were lost had "
        f"been given {oldest:.2f} s before the kill** (median lost answers per crash: "
        f"{float(np.median(lost)):.0f}).",
    ]
    _common.write_block(
        args.block,
        "Impression logging: what a crash loses",
        command_line("impression_crash.py", argv),
        body,
        {"runs": runs},
        prefix="impression-crash",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
