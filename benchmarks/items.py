"""Catalogue upserts through the HTTP API (issue 13): items per second.

``lifelongrec serve`` runs on a fresh home (synthetic shop, default model and settings:
the sequential model with the pretrained MiniLM text encoder, so every new item's text
is encoded), as its own process on 127.0.0.1. Then, each item new to the catalogue,
with a distinct title, two categories and a price:

1. ``single``: ``PUT /items/{id}`` one item per request, one client, one request at a
   time on a kept-alive connection;
2. ``concurrent``: the same from ``--clients`` clients at once (threads, one
   connection each);
3. ``batched``: ``PUT /items`` with ``--batch`` items per request, one client.

Without ``wait`` the answer comes after the durable write and the item goes live when
the service's catalogue thread has encoded it (in batches); each phase reports both
rates: *accepted* (items over the seconds until the last answer) and *live* (items over
the seconds until the last item answers ``GET /items/{id}/similar``). A fourth phase,
``single, wait``, sends ``?wait=true`` (each answer once the item is live). Every answer
is checked; the text encoder's cache is a fresh folder, so every title is encoded.

    nice -n 10 .venv/bin/python benchmarks/items.py
    nice -n 10 .venv/bin/python benchmarks/items.py --single 200 --no-write

Writes the ``service-items`` block of docs/benchmarks.md and its JSON (``--no-write``
prints only).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import command_line, free_port, write_block

KEY = "items-write-key-0123456789"
WORDS = "red blue green small large organic vegan classic deluxe travel home garden".split()
KINDS = "Shampoo Serum Lamp Kettle Jacket Novel Headphones Mug Tent Blender".split()


def item(j: int, phase: str) -> dict:
    a, b = WORDS[j % len(WORDS)], WORDS[(j // len(WORDS)) % len(WORDS)]
    kind = KINDS[(j // 7) % len(KINDS)]
    return {
        "title": f"{a.title()} {b} {kind} no. {j} ({phase})",
        "categories": ["Bench", kind],
        "attributes": {"price": round(5 + (j % 97) * 0.5, 2)},
    }


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"X-API-Key": KEY, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                r = self.conn.getresponse()
                return r.status, json.loads(r.read() or b"{}")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle kept-alive connection (its keep-alive
                # timeout): reconnect once, as HTTP clients do
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


def start(home: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "LIFELONGREC_API_KEYS": f"{KEY}:read,write",
        # a fresh text-encoder cache: every title of the run is encoded, none remembered
        "LIFELONGREC_CACHE_DIR": str(home.parent / "cache"),
    }
    cmd = [sys.executable, "-m", "lifelongrec.cli", "serve", "--home", str(home)]
    cmd += ["--data", "synthetic", "--port", str(port)]
    log = open(home.parent / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((home.parent / "server.log").read_text()[-3000:])
        try:
            if Client(port).call("GET", "/health")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not start within 15 minutes")


def single(
    port: int, n: int, phase: str, offset: int = 0, wait: bool = False
) -> tuple[float, list[str]]:
    c = Client(port)
    ids = [f"{phase}-{offset + j}" for j in range(n)]
    query = "?wait=true" if wait else ""
    t0 = time.perf_counter()
    for j, i in enumerate(ids):
        status, out = c.call("PUT", f"/items/{i}{query}", item(offset + j, phase))
        if status != 201 or out["item_id"] != i or not out["created"]:
            raise RuntimeError(f"PUT /items/{i}: {status} {out}")
        if wait and not out["live"]:
            raise RuntimeError(f"PUT /items/{i}?wait=true answered before it was live: {out}")
    return time.perf_counter() - t0, ids


def live_after(port: int, ids: list[str], t0: float, timeout: float = 900) -> float:
    """Seconds from ``t0`` until every one of ``ids`` answers similar items (they are
    published in order, so the last of each sender is polled)."""
    c = Client(port)
    deadline = time.monotonic() + timeout
    for i in ids:
        while c.call("GET", f"/items/{i}/similar?k=5")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{i} did not go live within {timeout} s")
            time.sleep(0.01)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--single", type=int, default=1000, help="items, one per request")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--concurrent", type=int, default=2000, help="items over all clients")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--waited", type=int, default=200, help="items sent with ?wait=true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lifelongrec-items-"))
    port = free_port()
    server = start(work / "home", port)
    results = {}
    try:
        single(port, 20, "warmup", wait=True)
        t0 = time.perf_counter()
        seconds, ids = single(port, args.single, "single")
        results["single"] = {
            "items": args.single,
            "seconds": seconds,
            "live_seconds": live_after(port, ids[-1:], t0),
        }
        per = args.concurrent // args.clients
        errors: list[str] = []
        spans: list[list[str]] = [[] for _ in range(args.clients)]

        def worker(w: int) -> None:
            try:
                spans[w] = single(port, per, "conc", offset=w * per)[1]
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        if errors:
            raise RuntimeError(errors[0])
        results["concurrent"] = {
            "items": per * args.clients,
            "seconds": seconds,
            "live_seconds": live_after(port, [s[-1] for s in spans], t0),
        }
        c = Client(port)
        t0 = time.perf_counter()
        for b in range(args.batches):
            offset = b * args.batch
            body = {
                "items": [
                    {"item_id": f"batch-{offset + j}", **item(offset + j, "batch")}
                    for j in range(args.batch)
                ]
            }
            status, out = c.call("PUT", "/items", body)
            if status != 200 or out["n_created"] != args.batch:
                raise RuntimeError(f"PUT /items: {status} {out}")
        seconds = time.perf_counter() - t0
        last = f"batch-{args.batch * args.batches - 1}"
        results["batched"] = {
            "items": args.batch * args.batches,
            "seconds": seconds,
            "live_seconds": live_after(port, [last], t0),
        }
        seconds, waited = single(port, args.waited, "waited", wait=True)
        results["waited"] = {"items": args.waited, "seconds": seconds, "live_seconds": seconds}
        probe = ids[:: max(1, len(ids) // 50)] + waited[-1:]
        for i in probe:
            status, out = c.call("GET", f"/items/{i}/similar?k=5")
            if status != 200 or len(out["items"]) != 5:
                raise RuntimeError(f"GET /items/{i}/similar: {status} {out}")
        health = c.call("GET", "/health")[1]
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    for r in results.values():
        r["items_per_second"] = round(r["items"] / r["seconds"], 1)
        r["live_items_per_second"] = round(r["items"] / r["live_seconds"], 1)
        r["seconds"] = round(r["seconds"], 2)
        r["live_seconds"] = round(r["live_seconds"], 2)
    rows = [
        ("single: `PUT /items/{id}`, 1 client", "single", args.single),
        (f"single, {args.clients} clients at once", "concurrent", results["concurrent"]["items"]),
        (f"batched: `PUT /items`, {args.batch} per request", "batched", args.batches),
        ("single with `?wait=true`, 1 client", "waited", args.waited),
    ]
    body = [
        "`lifelongrec serve` on a fresh home (synthetic shop, default model: sequential with "
        "the MiniLM text encoder, so each new item's title is encoded; a fresh encoder "
        "cache) as its own process; new items with distinct titles, two categories and a "
        "price, over loopback HTTP with keep-alive. *Accepted*: items over the seconds until "
        "the last answer (stored durably); *live*: until the last item answers "
        "`GET /items/{id}/similar` (encoded and indexed).",
        "",
        "| phase | requests | items | accepted items/s | live items/s |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {reqs:,} | {results[key]['items']:,} | "
            f"{results[key]['items_per_second']:,} | {results[key]['live_items_per_second']:,} |"
            for label, key, reqs in rows
        ),
        "",
        f"Catalogue after the run: {health.get('n_items', 0):,} items.",
    ]
    print("\n".join(body))
    if not args.no_write:
        command = ("nice -n 10 " + command_line("items.py", argv)).strip()
        write_block(
            "items", "Catalogue upserts: items per second", command, body, results, prefix="service"
        )


if __name__ == "__main__":
    main()
