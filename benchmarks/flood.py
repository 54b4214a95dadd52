"""Memory under a flood of new user ids (issue 13): the service's resident memory while
``--users`` users it has never seen send one event each.

A fresh home gets a first start on the synthetic shop with the default model and
settings (the background learner on: it learns every event and makes challengers, as
in production); then, in the same process, the flood: batches of ``--batch`` events,
each from a new user id on a random item, through ``RecommenderService.ingest`` (the
path ``POST /events`` takes after validation), and after each batch a recommendation
request for one of the batch's users and one for a user of the first 1% (a returning
user, restored from the store once evicted). The resident set size (``VmRSS``) is read
every ``--every`` users; the peak is the largest reading (``VmHWM`` at the end).

    nice -n 10 .venv/bin/python benchmarks/flood.py                     # 500k users, defaults
    nice -n 10 .venv/bin/python benchmarks/flood.py --max-users 0 --users 200000 --block no-cap

Writes the ``service-flood`` block of docs/benchmarks.md (``--block NAME``:
``service-flood-NAME``) and its JSON (``--no-write`` prints only).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import command_line, write_block

from lifelongrec.serving import RecommenderService


def memory_mb() -> dict[str, float]:
    """This process's resident set now (VmRSS) and at its peak (VmHWM), in MiB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss": out["VmRSS"], "peak": out["VmHWM"]}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=500_000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--every", type=int, default=25_000, help="users between readings")
    p.add_argument("--max-users", type=int, default=None, help="ServiceConfig.max_users")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block", default=None)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lifelongrec-flood-"))
    config = {} if args.max_users is None else {"max_users": args.max_users}
    t0 = time.perf_counter()
    service = RecommenderService.open(work / "home", data="synthetic", config=config)
    start_seconds = time.perf_counter() - t0
    cap = service.config.max_users
    items = service.live_model.known_items()
    rng = np.random.default_rng(args.seed)
    base = memory_mb()
    readings = [{"users": 0, **base, "in_memory": service.users_in_memory, "seconds": 0.0}]
    print(f"started in {start_seconds:.1f} s; rss {base['rss']:.0f} MiB; max_users={cap}")
    ts = 1_900_000_000
    t0 = time.perf_counter()
    cold = 0
    try:
        for start in range(0, args.users, args.batch):
            n = min(args.batch, args.users - start)
            picks = rng.integers(len(items), size=n)
            events = [
                {
                    "user_id": f"flood{start + j:07d}",
                    "item_id": items[int(picks[j])],
                    "timestamp": ts + start + j,
                    "event_type": "view",
                }
                for j in range(n)
            ]
            service.ingest(events)
            service.recommend(f"flood{start:07d}", k=10)
            back = service.recommend(
                f"flood{int(rng.integers(min(start + n, max(1, args.users // 100)))):07d}"
            )
            cold += bool(back["cold_start"])
            done = start + n
            if done % args.every == 0 or done == args.users:
                m = memory_mb()
                readings.append(
                    {
                        "users": done,
                        **m,
                        "in_memory": service.users_in_memory,
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
                print(
                    f"{done:>8,} users  rss {m['rss']:7.0f} MiB  peak {m['peak']:7.0f} MiB  "
                    f"in memory {service.users_in_memory:>7,}  {done / (time.perf_counter() - t0):,.0f} ev/s",
                    flush=True,
                )
        seconds = time.perf_counter() - t0
        counters = dict(service.counters)
        lag = service.lag()["events"]
    finally:
        service.close()
        shutil.rmtree(work, ignore_errors=True)
    end = readings[-1]
    peak = max(r["peak"] for r in readings)
    # growth per user while below the cap (the slope over the first readings)
    below = [r for r in readings if r["users"] and (not cap or r["users"] <= cap)]
    slope = (below[-1]["rss"] - base["rss"]) * 1024 / below[-1]["users"] if below else None
    summary = {
        "users": args.users,
        "max_users": cap,
        "start_seconds": round(start_seconds, 1),
        "flood_seconds": round(seconds, 1),
        "events_per_second": round(args.users / seconds, 1),
        "rss_before_mib": round(base["rss"], 1),
        "rss_end_mib": round(end["rss"], 1),
        "rss_peak_mib": round(peak, 1),
        "kib_per_user_below_cap": None if slope is None else round(slope, 2),
        "users_in_memory_end": end["in_memory"],
        "users_evicted": int(counters["users_evicted"]),
        "users_restored": int(counters["users_restored"]),
        "returning_users_answered_cold": cold,
        "learner_lag_events_end": lag,
        "challengers": int(counters["challengers"]),
        "readings": readings,
    }
    body = [
        f"A fresh home, first start on the synthetic shop with the default model and settings "
        f"(max_users={cap:,}; the background learner on); then {args.users:,} new user ids "
        f"send one event each in batches of {args.batch} through `RecommenderService.ingest`, "
        "with two recommendation requests per batch (one for a new user, one for a user of "
        "the first 1%, restored from the store when evicted). Memory is this process's "
        "resident set (VmRSS; peak VmHWM).",
        "",
        "| users | RSS MiB | peak MiB | users in memory | seconds |",
        "|---|---|---|---|---|",
        *(
            f"| {r['users']:,} | {r['rss']:.0f} | {r['peak']:.0f} | {r['in_memory']:,} | "
            f"{r['seconds']} |"
            for r in readings
        ),
        "",
        f"Before the flood {base['rss']:.0f} MiB; at the end {end['rss']:.0f} MiB, peak "
        f"{peak:.0f} MiB; "
        + (f"{slope:.1f} KiB per user in memory while below the cap; " if slope else "")
        + f"{summary['users_evicted']:,} evictions, {summary['users_restored']:,} users "
        f"restored from the store, {cold} returning-user requests answered cold "
        f"(of {args.users // args.batch:,}); {summary['events_per_second']:,.0f} events/s "
        f"with the learner on (lag at the end: {lag:,.0f} events).",
    ]
    print("\n".join(body))
    if not args.no_write:
        name = "flood" if not args.block else f"flood-{args.block}"
        title = "Memory under a flood of new users" + (f" ({args.block})" if args.block else "")
        command = ("nice -n 10 " + command_line("flood.py", argv)).strip()
        write_block(name, title, command, body, summary, prefix="service")


if __name__ == "__main__":
    main()
