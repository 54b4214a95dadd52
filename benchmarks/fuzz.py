"""Fuzz the running service over HTTP with schemathesis, every check on (issue 13).

1. A fresh home folder (a temporary one) gets a first start of ``lifelongrec serve``
   on the synthetic shop (``--synthetic-events`` events, a small sequential model so
   the start takes seconds; the background learner on, as in production), run as a
   real server process on 127.0.0.1 with two API keys.
2. ``st run`` (schemathesis' command line) tests every operation of the service's
   OpenAPI schema with ``--checks all`` (no 5xx, status codes, content types, headers
   and bodies as documented, invalid data rejected, valid data accepted, missing
   authentication refused, ...), in every phase (examples, coverage, fuzzing,
   stateful), ``--max-examples`` per operation, with the write key.
3. The server's own Prometheus counters give the number of requests it answered, by
   status; the run fails if any answer was a 5xx or schemathesis reports a failure.

    .venv/bin/python benchmarks/fuzz.py                      # 10 minutes, >10,000 requests
    .venv/bin/python benchmarks/fuzz.py --max-examples 50 --max-time 60 --no-write

Needs schemathesis (``pip install -e '.[test]'``). Writes the ``service-fuzz`` block of
docs/benchmarks.md and docs/benchmarks/service-fuzz.json (``--no-write`` prints only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ROOT, command_line, free_port, metric_samples, write_block

WRITE_KEY = "fuzz-write-key-0123456789"
READ_KEY = "fuzz-read-key-0123456789"
TINY = [
    "dim=16",
    "n_heads=1",
    "n_layers=1",
    "max_len=8",
    "epochs=2",
    "text_encoder=None",
    "validation=False",
]


def get(url: str, key: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.read()


def requests_by_status(port: int) -> dict[str, int]:
    """The server's request counter (``lifelongrec_requests_total``) summed by status."""
    samples = metric_samples(get(f"http://127.0.0.1:{port}/metrics", READ_KEY).decode())
    out: dict[str, int] = {}
    for (name, labels), value in samples.items():
        status = dict(labels).get("status")
        if name == "lifelongrec_requests_total" and status is not None and status.isdigit():
            out[status] = out.get(status, 0) + int(value)
    return dict(sorted(out.items()))


def start_server(home: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    env = {**os.environ, "LIFELONGREC_API_KEYS": f"{WRITE_KEY}:read,write;{READ_KEY}:read"}
    cmd = [
        sys.executable,
        "-m",
        "lifelongrec.cli",
        "serve",
        "--home",
        str(home),
        "--data",
        "synthetic",
        "--synthetic-events",
        str(args.synthetic_events),
        "--port",
        str(port),
    ]
    for p in TINY:
        cmd += ["--param", p]
    log = open(home.parent / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {(home.parent / 'server.log').read_text()}")
        try:
            get(f"http://127.0.0.1:{port}/health")
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not answer within 10 minutes")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-examples", type=int, default=1000, help="per operation (1000)")
    p.add_argument(
        "--max-time", type=int, default=600, help="seconds; fuzzing repeats until spent (600)"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-events", type=int, default=3000)
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        sys.exit("schemathesis is not installed: pip install -e '.[test]'")
    work = Path(tempfile.mkdtemp(prefix="lifelongrec-fuzz-"))
    port = free_port()
    server = start_server(work / "home", port, args)
    try:
        t0 = time.perf_counter()
        cmd = [
            st,
            "--config-file",
            str(ROOT / "schemathesis.toml"),
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"X-API-Key: {WRITE_KEY}",
            "--max-examples",
            str(args.max_examples),
            "--max-time",
            str(args.max_time),
            "--workers",
            str(args.workers),
            "--seed",
            str(args.seed),
            "--continue-on-failure",
            "--suppress-health-check",
            "all",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        statuses = requests_by_status(port)
        alive = get(f"http://127.0.0.1:{port}/health") == b'{"status":"ok"}'
    finally:
        server.terminate()
        server.wait(timeout=60)
    out = run.stdout + run.stderr
    (work / "schemathesis.log").write_text(out)
    generated = re.search(r"(\d+) generated", out)
    failures = re.search(r"(\d+) (?:unique )?failures?", out.split("SUMMARY")[-1])
    n_requests = sum(statuses.values())
    n_5xx = sum(v for k, v in statuses.items() if k.startswith("5"))
    summary = {
        "requests": n_requests,
        "by_status": statuses,
        "server_errors": n_5xx,
        "test_cases_generated": int(generated.group(1)) if generated else None,
        "schemathesis_exit_code": run.returncode,
        "schemathesis_failures": int(failures.group(1)) if failures else 0,
        "seconds": round(seconds, 1),
        "server_alive_after": alive,
    }
    print(out[-3000:])
    print(json.dumps(summary, indent=2))
    body = [
        "`lifelongrec serve` on a fresh home (synthetic shop, "
        f"{args.synthetic_events:,} events, a small sequential model, the background learner "
        "on), fuzzed over loopback by schemathesis `st run --checks all` in every phase "
        f"(examples, coverage, fuzzing, stateful), {args.max_examples} examples per "
        f"operation, fuzzing repeated for {args.max_time} s, {args.workers} workers, seed "
        f"{args.seed}. Requests are the server's own "
        "count (`lifelongrec_requests_total`).",
        "",
        "| requests answered | 5xx | schemathesis failures | test cases generated | seconds |",
        "|---|---|---|---|---|",
        f"| {n_requests:,} | {n_5xx} | {summary['schemathesis_failures']} | "
        f"{summary['test_cases_generated'] or 0:,} | {summary['seconds']} |",
        "",
        "By status: "
        + ", ".join(f"{k}: {v:,}" for k, v in statuses.items())
        + f". The server answered `/health` after the run: {alive}.",
    ]
    print("\n".join(body))
    if not args.no_write:
        command = command_line("fuzz.py", argv).strip()
        write_block(
            "fuzz",
            "API fuzzing: every operation, every check",
            command,
            body,
            summary,
            prefix="service",
        )
    shutil.rmtree(work, ignore_errors=True)
    if n_5xx or run.returncode != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
