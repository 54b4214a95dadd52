"""Issue 17: what logging impressions adds to the recommendation latency.

1. **Load test, off and on, alternating.** ``benchmarks/load.py``'s recommendation
   phase (the same home folder, 200 requests/s with the feeder and the learner on) is
   run ``--pairs`` times with ``log_impressions=false`` and with the default (on),
   alternately, so that drift of the machine hits both alike. Reported per run and as
   the median of each: p50 / p95 / p99 (ms, from the scheduled send time) and the
   server's mean time per request; the difference of the medians' p99 is the figure.
2. **The request path's own cost.** What a request pays for an impression is one
   :meth:`ImpressionLog.record` call (building ``k`` rows and a list append under a
   lock); it is timed in this process, ``--calls`` times with ``k`` items, with the
   buffer stored every 5,000 rows as the service does.

Writes the ``impressions-<block>`` block of docs/benchmarks.md and its raw JSON.

    .venv/bin/python benchmarks/impression_cost.py
    # smoke test (a minute; builds a small home once):
    .venv/bin/python benchmarks/impression_cost.py --pairs 1 --load-args "--items 2000 --events 8000 --duration 3 --warmup 1" --calls 2000 --no-write
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common
import load
import numpy as np
from _common import command_line, md_table

from lifelongrec.data import EventStore
from lifelongrec.serving import FeedbackSettings, ImpressionLog


def record_cost(calls: int, k: int = 10) -> dict[str, float]:
    """Per-call microseconds of ``ImpressionLog.record`` (p50, p99, mean)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp) / "events.sqlite")
        settings = FeedbackSettings(flush_seconds=3600)
        counters = dict.fromkeys(("impressions_logged", "impressions_dropped"), 0.0)
        counters["impression_flush_errors"] = 0.0
        log = ImpressionLog(store, settings, counters)
        items = [{"item_id": f"i{j:06d}", "score": 1.0 / (j + 1)} for j in range(k)]
        times = np.empty(calls)
        for c in range(calls):
            t0 = time.perf_counter()
            log.record(f"r{c:08d}", f"u{c % 5000:05d}", items, "v000001", None, 1_700_000_000)
            times[c] = time.perf_counter() - t0
            if log.pending >= settings.flush_rows:
                log.flush()
        log.close()
        store.close()
    us = times * 1e6
    return {
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=3, help="off/on load-test pairs")
    ap.add_argument(
        "--load-args",
        default="--duration 60",
        help="more arguments of load.py (its home folder and load settings)",
    )
    ap.add_argument("--calls", type=int, default=100_000, help="record() calls timed")
    ap.add_argument("--block", default="default")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    base = ["--phases", "recs", "--no-write", *shlex.split(args.load_args)]
    runs = []
    for pair in range(args.pairs):
        for mode in ("off", "on"):
            extra = ["--service", "log_impressions=false"] if mode == "off" else []
            res = load.main([*base, *extra])
            r = res["recs"]
            runs.append(
                {
                    "pair": pair,
                    "mode": mode,
                    **{k: r["latency_ms"][k] for k in ("p50", "p95", "p99")},
                    "server_mean": r["server"]["mean_ms"],
                    "rate": r["achieved_rate"],
                    "errors": r["errors"] or 0,
                }
            )
            print(runs[-1], flush=True)
    med = {
        mode: {
            k: statistics.median(x[k] for x in runs if x["mode"] == mode)
            for k in ("p50", "p95", "p99", "server_mean")
        }
        for mode in ("off", "on")
    }
    delta = med["on"]["p99"] - med["off"]["p99"]
    cost = record_cost(args.calls)
    print(med, f"p99 difference {delta:+.2f} ms", cost)
    if args.no_write:
        return 0
    body = [
        f"Load test: `load.py {' '.join(base)}` (plus `--service log_impressions=false` "
        "for off), run off, on, off, on, ... on the same home folder.",
        "",
        md_table(
            runs,
            [
                ("pair", "pair", 0),
                ("mode", "impressions", 0),
                ("p50", "p50 ms", 2),
                ("p95", "p95 ms", 2),
                ("p99", "p99 ms", 2),
                ("server_mean", "server mean ms", 2),
                ("rate", "req/s", 0),
                ("errors", "errors", 0),
            ],
        ),
        "",
        f"Medians: off p99 {med['off']['p99']:.2f} ms, on p99 {med['on']['p99']:.2f} ms: "
        f"**{delta:+.2f} ms** (target: at most +1 ms); p50 {med['off']['p50']:.2f} -> "
        f"{med['on']['p50']:.2f} ms; server mean {med['off']['server_mean']:.2f} -> "
        f"{med['on']['server_mean']:.2f} ms.",
        "",
        f"What a request pays (`ImpressionLog.record`, 10 items, {args.calls:,} calls in "
        f"one thread, the buffer stored every 5,000 rows): p50 {cost['p50_us']:.1f} µs, "
        f"p99 {cost['p99_us']:.1f} µs, mean {cost['mean_us']:.1f} µs.",
    ]
    raw = {"runs": runs, "medians": med, "p99_difference_ms": delta, "record": cost}
    _common.write_block(
        args.block,
        "Impression logging: its cost on the recommendation latency",
        command_line("impression_cost.py", argv),
        body,
        raw,
        prefix="impressions",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
