"""Two API replicas on one home folder: cross-replica reflection and ingestion.

A home folder is made with the synthetic shop (``--events`` events, the sequential model
of ``--param`` on top of a small default); then two ``lifelongrec serve`` processes
(replica A and B, ports picked free) open it with the default settings: A starts the
learner process, B finds it running and only follows (``learner_mode="process"`` on
both; B is started once A's learner has completed a round). Measured, in this order:

1. **Reflection across replicas** (``--trials`` times): for a user, B's current top
   item; the event "the user viewed it" is posted to A; from A's acknowledgement, B is
   asked for the user's recommendations every ``--poll-ms`` until the item is gone
   (excluded as seen): the wait is the time an event accepted by A takes to show in B's
   answers (B's store follower looks every 20 ms; with ``--bus``, B takes A's events
   from the bus as they are published and looks at the store every 0.25 s).
2. **Ingestion through both replicas**: for ``--ingest-seconds``, ``--writers``
   connections per replica post batches of ``--batch`` events (users and items of the
   shop, new timestamps) as fast as they are acknowledged; events/s acknowledged
   (durable: each answer comes after the store's fsync), and the store's count checked
   against the acknowledgements at the end.

Both replicas, the learner and this client share the machine's cores.

    .venv/bin/python benchmarks/replicas.py
    .venv/bin/python benchmarks/replicas.py --store "postgresql://postgres@127.0.0.1:5432/test?schema=bench_replicas" --bus redis://127.0.0.1:6379/0
    .venv/bin/python benchmarks/replicas.py --trials 20 --ingest-seconds 3 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, free_port, md_table, write_block  # noqa: E402
from _load_client import Server, make_client, quantiles_ms, rec_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "replicas"
MODEL = {"dim": 32, "epochs": 2, "text_encoder": None, "validation": False}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=20_000, help="synthetic events in the home")
    p.add_argument("--trials", type=int, default=200, help="reflection trials")
    p.add_argument("--poll-ms", type=float, default=2.0, help="B's polling interval")
    p.add_argument("--ingest-seconds", type=float, default=10.0)
    p.add_argument("--writers", type=int, default=4, help="connections per replica")
    p.add_argument("--batch", type=int, default=500, help="events per POST /events")
    p.add_argument(
        "--store",
        default=None,
        help="a postgresql:// URL for the replicas' store (its schema is emptied first); "
        "default: the home's SQLite file",
    )
    p.add_argument(
        "--bus",
        default=None,
        help="a redis:// URL: the replicas and the learner use that event bus (default: none)",
    )
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--no-write", action="store_true", help="print, do not write the block")
    return p


def make_home(args: argparse.Namespace) -> tuple[Path, list[str], list[str]]:
    from lifelongrec.serving import RecommenderService

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    home = args.work / "home"
    cfg = {"model": "sequential", "model_params": MODEL, "synthetic_events": args.events}
    if args.store:
        from lifelongrec.data import PostgresEventStore

        PostgresEventStore(args.store).drop()  # a fresh schema for a fresh home
        cfg["store_url"] = args.store
    if args.bus:
        cfg["bus_url"] = args.bus
    with RecommenderService.open(home, data="synthetic", config={**cfg, "background": False}) as s:
        users = sorted(s.live_model.known_users())
        items = sorted(s.live_model.known_items())
    (home / "service.json").unlink()  # the servers start with the default settings
    (args.work / "config.json").write_text(json.dumps(cfg))
    return home, users, items


async def reflection(a: Any, b: Any, users: list[str], args: argparse.Namespace) -> list[float]:
    rng = np.random.default_rng(0)
    waits: list[float] = []
    ts = 2_000_000_000
    for j in range(args.trials):
        user = users[int(rng.integers(len(users)))]
        _, body = await b.request("GET", rec_path(user, 1))
        item = json.loads(body)["items"][0]["item_id"]
        event = {"user_id": user, "item_id": item, "timestamp": ts + j}
        status, _ = await a.request("POST", "/events", json.dumps(event).encode())
        assert status == 201, status
        t0 = time.perf_counter()
        while True:
            _, body = await b.request("GET", rec_path(user, 10))
            if item not in [i["item_id"] for i in json.loads(body)["items"]]:
                break
            if time.perf_counter() - t0 > 10:
                raise RuntimeError(f"B never reflected {event}")
            await asyncio.sleep(args.poll_ms / 1000)
        waits.append(time.perf_counter() - t0)
    return waits


async def ingestion(
    clients: list[Any], users: list[str], items: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    end = time.perf_counter() + args.ingest_seconds
    acked, errors = [0], [0]

    async def writer(client: Any, seed: int) -> None:
        rng = np.random.default_rng(seed)
        ts = 2_100_000_000 + seed * 10_000_000
        while time.perf_counter() < end:
            batch = [
                {
                    "user_id": users[int(rng.integers(len(users)))],
                    "item_id": items[int(rng.integers(len(items)))],
                    "timestamp": ts + k,
                }
                for k in range(args.batch)
            ]
            ts += args.batch
            body = json.dumps({"events": batch}).encode()
            status, body = await client.request("POST", "/events", body)
            if status == 201:
                acked[0] += json.loads(body)["n_written"]
            else:
                errors[0] += 1
                if errors[0] == 1:
                    print(f"POST /events answered {status}: {body[:300]!r}", flush=True)

    t0 = time.perf_counter()
    await asyncio.gather(
        *(writer(c, 100 * i + w) for i, c in enumerate(clients) for w in range(args.writers))
    )
    wall = time.perf_counter() - t0
    return {"acked": acked[0], "errors": errors[0], "seconds": wall, "per_s": acked[0] / wall}


async def measure(ports: list[int], users, items, args) -> dict[str, Any]:
    a, b = (make_client("raw", "127.0.0.1", p, args.writers + 2, 30.0) for p in ports)
    try:
        waits = await reflection(a, b, users, args)
        _, h = await b.request("GET", "/health")
        n0 = json.loads(h)["n_events"]
        ingest = await ingestion([a, b], users, items, args)
        _, h = await a.request("GET", "/health")
        health_a = json.loads(h)
        _, h = await b.request("GET", "/health")
        health_b = json.loads(h)
    finally:
        await a.aclose()
        await b.aclose()
    ingest["stored"] = health_a["n_events"] - n0
    bus = ("bus_published", "bus_publish_errors", "bus_events_in")
    return {
        "bus": {
            name: {k: h["counters"].get(k, 0) for k in bus}
            for name, h in (("a", health_a), ("b", health_b))
        },
        "reflection": quantiles_ms(waits),
        "ingest": ingest,
        "learner_a": {k: health_a[k] for k in ("learner_mode", "learner_pid", "learner_running")},
        "learner_b": {k: health_b[k] for k in ("learner_mode", "learner_pid", "learner_running")},
    }


def wait_for_learner(port: int, timeout: float = 300) -> None:
    """Until the server's learner process has completed a round."""
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            if json.loads(r.read()).get("learner_rounds", 0) >= 1:
                return
        time.sleep(0.2)
    raise TimeoutError(f"no learner round within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    home, users, items = make_home(args)
    config = json.loads((args.work / "config.json").read_text())
    servers = [
        Server(home, config, free_port(), args.work / f"replica-{name}.log") for name in "ab"
    ]
    try:
        servers[0].start(timeout=300)
        wait_for_learner(servers[0].port)  # A's learner holds the home: B follows it
        servers[1].start(timeout=300)
        out = asyncio.run(measure([s.port for s in servers], users, items, args))
    finally:
        for s in servers:
            s.stop()
    out["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    r, g = out["reflection"], out["ingest"]
    print(json.dumps(out, indent=2))
    if args.no_write:
        return out
    rows = [
        {
            "what": "event accepted by A -> reflected in B's answer (ms)",
            "p50": r["p50"],
            "p95": r["p95"],
            "p99": r["p99"],
            "max": r["max"],
            "n": r["n"],
        }
    ]
    table = md_table(
        rows,
        [
            ("what", "measurement", 0),
            ("p50", "p50", 1),
            ("p95", "p95", 1),
            ("p99", "p99", 1),
            ("max", "max", 1),
            ("n", "trials", 0),
        ],
    )
    store = "PostgreSQL store on the same machine" if args.store else "SQLite store"
    if args.bus:
        store += ", the Redis Streams event bus on the same machine"
    body = [
        f"Two `lifelongrec serve` processes on one home folder (synthetic shop, "
        f"{args.events:,} events, sequential {MODEL}; the default settings, {store}, "
        "the learner process started by A, B following it), this client on the same "
        f"2-core machine. Reflection: B polled every {args.poll_ms:g} ms after A's "
        "acknowledgement until the item the event named left B's top 10.",
        "",
        table,
        "",
        f"Ingestion through both replicas ({args.writers} connections each, "
        f"{args.batch}-event batches, {g['seconds']:.1f} s): **{g['per_s']:,.0f} events/s** "
        f"acknowledged ({g['acked']:,} events; {g['stored']:,} more in the store afterwards; "
        f"{g['errors']} errors). Learner: A {out['learner_a']}, B {out['learner_b']}.",
    ]
    if args.bus:
        body += [
            "",
            f"Bus counters at the end: A {out['bus']['a']}, B {out['bus']['b']} "
            "(`bus_events_in`: events a replica took in from the bus rather than the store).",
        ]
    backend = "PostgreSQL" if args.store else "SQLite"
    write_block(
        backend.lower() + ("-bus" if args.bus else ""),
        f"Two API replicas on one home folder ({backend}{' + Redis bus' if args.bus else ''})",
        command_line("replicas.py", argv),
        body,
        out,
        prefix="replicas",
    )
    return out


if __name__ == "__main__":
    main()
