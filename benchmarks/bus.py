"""Redis Streams against NATS JetStream as the service's event bus, on the local servers.

What the bus must do for lifelongrec: carry each batch of events an API process stored
to the other API processes (fan-out, each reads every message) and to the learner (a
consumer group with acknowledgements), as fast as it can and with the smallest delay.
For each server, measured with its maintained Python client (redis-py, nats-py):

1. **one-event messages** (``--single`` of them, one at a time): publish with the
   server's acknowledgement, delivery to a waiting reader; per message, the publish
   call's time and the delay from publishing to the reader holding it;
2. **batches** (``--batches`` messages of ``--batch`` events, JSON, as the service
   sends them): events/s published (acknowledged) and events/s consumed through a
   consumer group with one acknowledgement per message.

Redis: ``XADD`` (``MAXLEN ~``), a reader blocked in ``XREAD``, ``XREADGROUP`` +
``XACK``. JetStream: a file-stored stream, ``js.publish`` awaiting the stream's
acknowledgement, a push subscription for delivery, a durable pull consumer for the group
(``fetch`` of up to 64 messages, ``ack`` each). Everything runs on this machine; each
server is the one the machine runs (Redis 127.0.0.1:6379, NATS 127.0.0.1:4222).

    .venv/bin/python benchmarks/bus.py
    .venv/bin/python benchmarks/bus.py --single 200 --batches 50 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, md_table, write_block  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--single", type=int, default=2_000, help="one-event messages")
    p.add_argument("--batches", type=int, default=400, help="batch messages")
    p.add_argument("--batch", type=int, default=500, help="events per batch message")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    p.add_argument("--no-write", action="store_true", help="print, do not write the block")
    return p


def batch_payload(n: int, seq: int) -> bytes:
    rng = np.random.default_rng(seq)
    events = [
        {
            "seq": seq + k,
            "user_id": f"u{int(rng.integers(100_000)):06d}",
            "item_id": f"i{int(rng.integers(1_000_000)):07d}",
            "timestamp": 2_000_000_000 + k,
            "event_type": "view",
            "value": None,
        }
        for k in range(n)
    ]
    return json.dumps({"first_seq": seq, "events": events}).encode()


def ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def result(publish: list, delivery: list, events: int, pub_s: float, group_s: float) -> dict:
    return {
        "publish_ms": ms(publish),
        "delivery_ms": ms(delivery),
        "publish_events_per_s": events / pub_s,
        "group_events_per_s": events / group_s,
    }


# ---------------------------------------------------------------------- Redis Streams
def redis_run(args: argparse.Namespace) -> dict[str, Any]:
    import redis

    r = redis.Redis.from_url(args.redis)
    key = f"bench:{uuid.uuid4().hex[:8]}"
    try:
        # one-event messages: publish (acknowledged) and delivery to a blocked reader
        got: dict[int, float] = {}
        ready = threading.Event()

        def reader() -> None:
            rr = redis.Redis.from_url(args.redis)
            last = "0-0"
            ready.set()
            while len(got) < args.single:
                for _, entries in rr.xread({key: last}, block=1000, count=100) or []:
                    for mid, fields in entries:
                        got[int(fields[b"n"])] = time.perf_counter()
                        last = mid

        th = threading.Thread(target=reader)
        th.start()
        ready.wait()
        one = batch_payload(1, 0)
        sent, publish = {}, []
        for n in range(args.single):
            t0 = time.perf_counter()
            r.xadd(key, {"n": n, "p": one}, maxlen=100_000, approximate=True)
            sent[n] = t0
            publish.append(time.perf_counter() - t0)
            time.sleep(0.0005)
        th.join()
        delivery = [got[n] - sent[n] for n in range(args.single)]
        r.delete(key)
        # batches: publish rate, then a consumer group reading and acknowledging
        payloads = [batch_payload(args.batch, 1 + j * args.batch) for j in range(8)]
        t0 = time.perf_counter()
        for j in range(args.batches):
            r.xadd(key, {"p": payloads[j % 8]}, maxlen=100_000, approximate=True)
        pub_s = time.perf_counter() - t0
        r.xgroup_create(key, "learner", id="0")
        t0, n = time.perf_counter(), 0
        while n < args.batches:
            out = r.xreadgroup("learner", "c1", {key: ">"}, count=64, block=1000)
            for _, entries in out or []:
                for mid, fields in entries:
                    json.loads(fields[b"p"])
                    r.xack(key, "learner", mid)
                    n += 1
        group_s = time.perf_counter() - t0
    finally:
        r.delete(key)
    return result(publish, delivery, args.batches * args.batch, pub_s, group_s)


# ---------------------------------------------------------------------- NATS JetStream
async def nats_main(args: argparse.Namespace) -> dict[str, Any]:
    import nats
    from nats.js.api import StorageType, StreamConfig

    nc = await nats.connect(args.nats)
    js = nc.jetstream()
    name = f"bench{uuid.uuid4().hex[:8]}"
    subject = f"{name}.events"
    await js.add_stream(StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE))
    try:
        got: dict[int, float] = {}
        done = asyncio.Event()

        async def on_message(msg: Any) -> None:
            got[int(msg.headers["n"])] = time.perf_counter()
            await msg.ack()
            if len(got) == args.single:
                done.set()

        sub = await js.subscribe(subject, cb=on_message, ordered_consumer=False)
        one = batch_payload(1, 0)
        sent, publish = {}, []
        for n in range(args.single):
            t0 = time.perf_counter()
            await js.publish(subject, one, headers={"n": str(n)})
            sent[n] = t0
            publish.append(time.perf_counter() - t0)
            await asyncio.sleep(0.0005)
        await asyncio.wait_for(done.wait(), 60)
        await sub.unsubscribe()
        delivery = [got[n] - sent[n] for n in range(args.single)]
        await js.purge_stream(name)
        payloads = [batch_payload(args.batch, 1 + j * args.batch) for j in range(8)]
        t0 = time.perf_counter()
        for j in range(args.batches):
            await js.publish(subject, payloads[j % 8])
        pub_s = time.perf_counter() - t0
        psub = await js.pull_subscribe(subject, durable="learner")
        t0, n = time.perf_counter(), 0
        while n < args.batches:
            for msg in await psub.fetch(64, timeout=5):
                json.loads(msg.data)
                await msg.ack()
                n += 1
        group_s = time.perf_counter() - t0
    finally:
        await js.delete_stream(name)
        await nc.close()
    return result(publish, delivery, args.batches * args.batch, pub_s, group_s)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    out = {"redis": redis_run(args), "nats": asyncio.run(nats_main(args))}
    print(json.dumps(out, indent=2))
    if args.no_write:
        return out
    rows = [
        {
            "bus": label,
            "pub50": res["publish_ms"]["p50"],
            "pub99": res["publish_ms"]["p99"],
            "del50": res["delivery_ms"]["p50"],
            "del99": res["delivery_ms"]["p99"],
            "pub": res["publish_events_per_s"],
            "group": res["group_events_per_s"],
        }
        for label, res in (
            ("Redis Streams (redis-py)", out["redis"]),
            ("NATS JetStream (nats-py, file storage)", out["nats"]),
        )
    ]
    table = md_table(
        rows,
        [
            ("bus", "bus", 0),
            ("pub50", "publish p50 (ms)", 3),
            ("pub99", "publish p99 (ms)", 3),
            ("del50", "delivery p50 (ms)", 3),
            ("del99", "delivery p99 (ms)", 3),
            ("pub", "batch publish (events/s)", 0),
            ("group", "group consume + ack (events/s)", 0),
        ],
    )
    body = [
        f"{args.single:,} one-event messages (publish acknowledged by the server; delivery "
        f"to a waiting reader), then {args.batches:,} messages of {args.batch} events "
        "(JSON, as the service publishes them) published and consumed through a consumer "
        "group with one acknowledgement per message. Local servers, one client process.",
        "",
        table,
    ]
    write_block(
        "redis-vs-nats",
        "Event bus: Redis Streams vs NATS JetStream",
        command_line("bus.py", argv),
        body,
        out,
        prefix="bus",
    )
    return out


if __name__ == "__main__":
    main()
