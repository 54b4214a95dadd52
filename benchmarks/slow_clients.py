"""Issue 13: how a normal client fares while many slow clients hold connections.

Everything runs on this machine over loopback:

1. **Server.** By default a tiny FastAPI app (``GET /`` answers ``{"ok": true}``,
   ``POST /echo`` reads its body) run by :func:`lifelongrec.serving.run_server`
   in a subprocess (its own interpreter, as ``lifelongrec serve`` runs), with the
   ``ServerLimits`` given by ``--header-timeout``, ``--body-timeout``, ``--keep-alive``
   and ``--max-connections``. ``--port P`` instead attacks a server already listening
   on 127.0.0.1:P (e.g. ``lifelongrec serve --open --port P``; ``--path /health``).
2. **Slow clients.** ``--slow`` connections opened one after another, each sending half
   a request and then nothing, in turn of ``--kinds``: ``line`` (part of the request
   line), ``headers`` (a request line and part of the headers), ``body`` (headers with
   ``Content-Length: 100`` and 10 bytes of body), ``nothing`` (connect only).
3. **Normal client.** Right after, while the slow clients hold their connections,
   ``--normal-requests`` GETs of ``--path``, one at a time, each on a new connection
   (``--reuse``: all on one kept-alive connection); the latency of each (connect to last
   byte) gives p50 / p99 / max. ``--baseline`` measures the same first with no slow
   clients.
4. **Closing.** Then it watches the slow connections for ``--watch`` seconds (default:
   the longest timeout + 3 s) and reports, per kind, how many the server closed and how
   long after their connect (min / median / max), and how many it closed while the
   normal requests ran.

    .venv/bin/python benchmarks/slow_clients.py                      # 1,000 slow clients
    .venv/bin/python benchmarks/slow_clients.py --slow 5000 --max-connections 2000
    .venv/bin/python benchmarks/slow_clients.py --header-timeout 2 --body-timeout 2

It prints its report; ``--json`` prints the numbers as one JSON object too, ``--write``
writes the ``service-slow-clients`` block of docs/benchmarks.md and its JSON.

    .venv/bin/python benchmarks/slow_clients.py --service --path /users/u00001/recommendations \
        --baseline --write                                 # the figure in docs/benchmarks.md
"""

import argparse
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from _common import command_line, free_port

KINDS = {
    "line": b"GET /slow HT",
    "headers": b"GET / HTTP/1.1\r\nHost: bench\r\nX-Slow: ",
    "body": b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: 100\r\n\r\n0123456789",
    "nothing": b"",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slow", type=int, default=1000, help="slow connections (1000)")
    p.add_argument("--normal-requests", type=int, default=200, help="timed GETs (200)")
    p.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    p.add_argument("--header-timeout", type=float, default=10.0)
    p.add_argument("--body-timeout", type=float, default=30.0)
    p.add_argument("--keep-alive", type=float, default=5.0)
    p.add_argument("--max-connections", type=int, default=4096)
    p.add_argument("--port", type=int, default=None, help="attack this running server")
    p.add_argument(
        "--service",
        action="store_true",
        help="attack `lifelongrec serve` itself: a fresh home, first start on the synthetic "
        "shop with the default model, --open, the limits given here",
    )
    p.add_argument("--write", action="store_true", help="write the service-slow-clients docs block")
    p.add_argument("--path", default="/", help="what the normal client GETs (/)")
    p.add_argument("--reuse", action="store_true", help="normal requests on one connection")
    p.add_argument("--baseline", action="store_true", help="time the GETs alone first")
    p.add_argument("--watch", type=float, default=None, help="seconds to watch closes")
    p.add_argument("--json", action="store_true", help="also print one JSON object")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child
    return p


def limits_from(args):
    from lifelongrec.serving import ServerLimits

    return ServerLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive=args.keep_alive,
        max_connections=args.max_connections,
    ).validate()


def serve(args) -> None:
    """The child: the tiny app on 127.0.0.1:args.port until terminated."""
    from fastapi import FastAPI, Request

    from lifelongrec.serving import run_server

    app = FastAPI()

    @app.get("/")
    def root() -> dict:
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    run_server(app, "127.0.0.1", args.port, limits_from(args), log_level="warning")


def raise_fd_limit(n: int) -> None:
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= n:
        return
    target = n if hard == resource.RLIM_INFINITY else min(n, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < n:
        sys.exit(f"needs {n} open files, the hard limit is {hard}: ulimit -Hn, or fewer --slow")


def start_child(args, port: int, home: Path | None) -> subprocess.Popen:
    """The server to attack: the tiny app (or ``lifelongrec serve``) on ``port``."""
    script = Path(__file__).resolve()
    cmd = [sys.executable, str(script), "--serve", "--port", str(port)]
    for name in ("header_timeout", "body_timeout", "keep_alive", "max_connections"):
        cmd += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    if args.service:
        cmd = [sys.executable, "-m", "lifelongrec.cli", "serve", "--home", str(home / "h")]
        cmd += ["--data", "synthetic", "--open", "--port", str(port)]
        cmd += ["--header-timeout", str(args.header_timeout)]
        cmd += ["--body-timeout", str(args.body_timeout)]
        cmd += ["--max-connections", str(args.max_connections)]
    return subprocess.Popen(
        cmd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL if args.service else None,
        stderr=subprocess.DEVNULL if args.service else None,
    )


def stop_child(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def wait_for_server(args, port: int, child: subprocess.Popen | None) -> bool:
    """Whether ``port`` answers ``GET args.path`` with 200 while our ``child`` (when we
    started one) runs; ``False`` when the child exited or did not answer in time.

    Another answer than 200 is an error (a wrong ``--path``), except from a port where
    our tiny app has not started yet: that is someone else's server (the port was taken
    before the child bound it, and the child will exit)."""
    deadline = time.monotonic() + (900 if args.service else 60)
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return False
        try:
            timed_get(port, args.path)
            return True
        except OSError:
            time.sleep(0.1)
        except (RuntimeError, ValueError, StopIteration):
            if child is None or args.service:
                raise
            time.sleep(0.1)
    return False


def timed_get(port: int, path: str, sock: socket.socket | None = None) -> float:
    """Seconds for one GET (connect included when ``sock`` is None)."""
    start = time.perf_counter()
    own = sock is None
    if own:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    close = b"Connection: close\r\n" if own else b""
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\n" + close + b"\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(None, 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    if own:
        sock.close()
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    return time.perf_counter() - start


def normal_client(port: int, path: str, n: int, reuse: bool) -> list[float]:
    if not reuse:
        return [timed_get(port, path) for _ in range(n)]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        return [timed_get(port, path, sock) for _ in range(n)]


def percentiles(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1e3 for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, round(q * (len(ms) - 1)))]  # noqa: E731
    return {"p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": ms[-1], "n": len(ms)}


def open_slow(port: int, n: int, kinds: list[str]) -> list[tuple[str, float, socket.socket]]:
    slow = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        connected = time.monotonic()
        if KINDS[kind]:
            sock.sendall(KINDS[kind])
        sock.setblocking(False)
        slow.append((kind, connected, sock))
    return slow


def watch_closes(slow, until: float, closed: dict[int, float]) -> None:
    """Record in ``closed`` {index: monotonic time of the server's close} until every
    slow connection is closed or ``until`` (a monotonic time)."""
    sel = selectors.DefaultSelector()
    for i, (_, _, sock) in enumerate(slow):
        if i not in closed:
            sel.register(sock, selectors.EVENT_READ, i)
    while len(closed) < len(slow) and time.monotonic() < until:
        for key, _ in sel.select(timeout=min(0.2, max(0.0, until - time.monotonic()))):
            try:
                eof = not key.fileobj.recv(65536)  # a 408 first, then EOF
            except BlockingIOError:
                continue
            except OSError:
                eof = True
            if eof:
                closed[key.data] = time.monotonic()
                sel.unregister(key.fileobj)
    sel.close()


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s"


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.serve:
        serve(args)
        return {}
    raise_fd_limit(args.slow + 256)
    child = None
    port = args.port
    home = None
    if port is None:
        limits_from(args)  # bad settings fail here, not in the child
        if args.service:
            home = Path(tempfile.mkdtemp(prefix="lifelongrec-slow-"))
    slow: list = []
    try:
        # another process may take the free port before the child binds it (tests run
        # in parallel): then the child exits, or the port answers for someone else;
        # start again on another port
        for _attempt in range(5):
            if args.port is None:
                port = free_port()
                child = start_child(args, port, home)
            if wait_for_server(args, port, child):
                break
            if child is None:
                raise SystemExit("the server did not start")
            stop_child(child)
        else:
            raise SystemExit("the server did not start (5 ports tried)")
        result: dict = {"slow": args.slow, "kinds": args.kinds, "port": port}
        if args.baseline:
            result["baseline"] = percentiles(
                normal_client(port, args.path, args.normal_requests, args.reuse)
            )
        t0 = time.monotonic()
        slow = open_slow(port, args.slow, args.kinds)
        result["open_slow_s"] = time.monotonic() - t0
        closed: dict[int, float] = {}
        watch_closes(slow, time.monotonic() + 0.2, closed)  # let the server accept them
        latencies = normal_client(port, args.path, args.normal_requests, args.reuse)
        normal_done = time.monotonic()
        result["with_slow"] = percentiles(latencies)
        watch_closes(slow, normal_done, closed)
        result["closed_during_normal"] = len(closed)
        watch = args.watch
        if watch is None:
            watch = max(args.header_timeout, args.body_timeout) + 3
        watch_closes(slow, normal_done + watch, closed)
        per_kind = {}
        for kind in args.kinds:
            idx = [i for i, s in enumerate(slow) if s[0] == kind]
            after = [closed[i] - slow[i][1] for i in idx if i in closed]
            per_kind[kind] = {
                "opened": len(idx),
                "closed": len(after),
                "after_s": (min(after), statistics.median(after), max(after)) if after else None,
            }
        result["closed"] = per_kind
    finally:
        for _, _, sock in slow:
            sock.close()
        if child is not None:
            stop_child(child)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    print_report(result, args)
    if args.json:
        print(json.dumps(result))
    if args.write:
        write_docs(result, args, sys.argv[1:] if argv is None else argv)
    return result


def write_docs(result: dict, args, argv: list[str]) -> None:
    """The ``service-slow-clients`` block of docs/benchmarks.md and its JSON."""
    server = (
        "`lifelongrec serve` (a fresh home, first start on the synthetic shop, default model)"
        if args.service
        else "a tiny app on `run_server`"
    )
    rows = [
        f"| {name.replace('_', ' ')} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} |"
        for name, r in ((n, result[n]) for n in ("baseline", "with_slow") if n in result)
    ]
    closes = [
        f"{kind}: {r['closed']} of {r['opened']} closed, "
        + (f"{r['after_s'][1]:.2f} s after connecting (median)" if r["after_s"] else "none")
        for kind, r in result["closed"].items()
    ]
    body = [
        f"{server} on loopback with header timeout {args.header_timeout:g} s, body timeout "
        f"{args.body_timeout:g} s, at most {args.max_connections:,} connections. "
        f"{result['slow']:,} slow clients each send half a request ({', '.join(args.kinds)}) "
        f"and then nothing; meanwhile a normal client sends {args.normal_requests} "
        f"`GET {args.path}`, each on a new connection.",
        "",
        "| normal client | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|",
        *rows,
        "",
        "Slow connections: " + "; ".join(closes) + f"; {result['closed_during_normal']} "
        "closed while the normal client ran.",
    ]
    command = command_line("slow_clients.py", argv).strip()
    _common.write_block("slow-clients", "Slow clients", command, body, result, prefix="service")


def print_report(result: dict, args) -> None:
    where = f"127.0.0.1:{result['port']}"
    mode = "one kept-alive connection" if args.reuse else "a new connection each"
    print(
        f"server {where}: header_timeout {args.header_timeout:g}s, body_timeout "
        f"{args.body_timeout:g}s, keep_alive {args.keep_alive:g}s, max_connections "
        f"{args.max_connections}"
    )
    print(
        f"{args.slow} slow connections ({', '.join(args.kinds)}) opened in "
        f"{result['open_slow_s']:.2f} s"
    )
    print(f"normal client, {args.normal_requests} GET {args.path} ({mode}):")
    print("  phase            p50 ms   p99 ms   max ms")
    for name in ("baseline", "with_slow"):
        if name in result:
            r = result[name]
            print(f"  {name:<14} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.2f}")
    print(f"slow connections closed while the normal client ran: {result['closed_during_normal']}")
    print("slow connections closed by the server (after connect: min / median / max):")
    for kind, r in result["closed"].items():
        after = summary(list(r["after_s"])) if r["after_s"] else "-"
        print(f"  {kind:<8} {r['closed']:5d} of {r['opened']:5d}   {after}")


if __name__ == "__main__":
    main()
