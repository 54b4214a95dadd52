"""``lifelongrec serve``: the recommendation service (HTTP API, durable events, online
learning) on a home folder, and the banner it prints once it is ready."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from lifelongrec._errors import DataError, LifelongrecError, ParameterError
from lifelongrec.cli._common import (
    ColumnsOpt,
    ModelOpt,
    ParamOpt,
    SeedOpt,
    SyntheticEventsOpt,
    TimestampUnitOpt,
    _fail,
    service_data,
)

__all__ = ["serve", "serve_banner"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve_banner(host: str, port: int, keys: Any, version: str) -> str:
    """What ``serve`` prints once it is ready: where to point a browser or curl."""
    where = f"[{host}]" if ":" in host else host
    base = f"http://{where}:{port}"
    lines = [
        f"lifelongrec is serving model {version} on {base}",
        f"  API docs in a browser: {base}/docs",
        f"  dashboard in a browser: {base}/dashboard"
        + ("" if keys.is_open else " (log in with a key that has the read scope)"),
    ]
    header = ""
    if keys.is_open:
        lines.append("  open access (--open): no API key needed")
    else:
        lines.append(f"  API keys from {keys.source}")
        if keys.created:
            for k in keys.keys():
                lines.append(f"    {k['name'] or 'key'} ({', '.join(k['scopes'])}): {k['key']}")
        write = next((k for k in keys.keys() if "write" in k["scopes"]), None)
        if write is not None and keys.created:
            header = f"-H 'X-API-Key: {write['key']}' "
        else:
            header = "-H 'X-API-Key: YOUR_KEY' "
    lines.append(f"  try: curl {header}{base}/users/u00001/recommendations?k=5")
    return "\n".join(lines)


def serve(
    home: Annotated[Path, typer.Option("--home", help="The service's home folder.")] = Path(
        "lifelongrec-home"
    ),
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Data for the first start (a path or 'synthetic'); later starts load the "
            "champion from the home folder.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    model: ModelOpt = "sequential",
    param: ParamOpt = None,
    synthetic_events: SyntheticEventsOpt = 20_000,
    seed: SeedOpt = 0,
    config: Annotated[
        Path | None,
        typer.Option(help="A JSON file of service settings (see ServiceConfig)."),
    ] = None,
    open_access: Annotated[
        bool,
        typer.Option("--open", help="No API keys (development on localhost only)."),
    ] = False,
    torch_threads: Annotated[
        int,
        typer.Option(min=1, help="Threads for torch and faiss (1 keeps request latency steady)."),
    ] = 1,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.001, help="Seconds a client has to send a request's headers (slow clients)."
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(min=0.001, help="Longest pause in a request body, in seconds."),
    ] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(min=1, help="Open connections at most (the oldest slow one makes room)."),
    ] = 4096,
    switch_interval_ms: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="The interpreter's thread switch interval in milliseconds (Python's is 5): "
            "how soon a request gets the interpreter back from ingestion.",
        ),
    ] = 0.5,  # serving._server.SWITCH_INTERVAL (not imported here: the CLI starts light)
    gc_freeze: Annotated[
        bool,
        typer.Option(
            "--gc-freeze/--no-gc-freeze",
            help="Freeze the objects the start made (gc.freeze) so the interpreter's full "
            "collections skip them: without it one took 229 ms at 100k items "
            "(benchmarks/gc_pause.py), a pause every request in flight waits out.",
        ),
    ] = True,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Where events, the catalogue and impressions live: a postgresql:// URL "
            "shared by several serve processes (default: the SQLite file HOME/events.sqlite). "
            "A home folder keeps the store it started with.",
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(
            "--bus",
            help="An event bus between the serve processes and the learner: a redis:// URL "
            "(default: none; each process follows the store).",
        ),
    ] = None,
) -> None:
    """Run the recommendation service: HTTP API, durable events, online learning."""
    import torch

    from lifelongrec.evaluation import parse_params
    from lifelongrec.serving import KeyRing, RecommenderService, create_app
    from lifelongrec.serving._server import ServerLimits, run_server

    if open_access and host not in _LOOPBACK:
        _fail(
            ParameterError(
                "--open",
                host,
                "a loopback --host (127.0.0.1, localhost, ::1): open access "
                "is for development on your own machine",
            )
        )
    import faiss
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # the first index build: all cores
    threadpool_limits(torch_threads)  # BLAS of exact scoring: parallel requests instead
    settings: dict[str, Any] | None = {}
    if config is not None:
        try:
            settings = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            _fail(ParameterError("--config", str(config), f"a readable JSON file ({exc})"))
    params = parse_params(param)
    if config is None and not params and (home / "service.json").is_file():
        settings = None  # a later start: the settings saved by the last one
    else:
        settings.setdefault("model", model)
        settings.setdefault("seed", seed)
        settings.setdefault("synthetic_events", synthetic_events)
        if params:
            settings["model_params"] = {**settings.get("model_params", {}), **params}
    named = {k: v for k, v in (("store_url", store), ("bus_url", bus)) if v is not None}
    if named:
        if settings is None:  # a later start: its saved settings, with these named
            saved = home / "service.json"
            try:
                settings = json.loads(saved.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                _fail(DataError(f"unreadable settings ({exc})", path=saved))
        settings.update(named)
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("lifelongrec")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    typer.echo(f"opening {home} ...", err=True)
    try:
        limits = ServerLimits(
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
        ).validate()
        # --columns / --timestamp-unit read the data of a first start; a later start has
        # its events in the home folder already.
        first = data if (home / "service.json").is_file() else None
        if first is None:
            first = service_data(data, columns=columns, timestamp_unit=timestamp_unit)
        service = RecommenderService.open(home, data=first, config=settings, start=False)
        faiss.omp_set_num_threads(torch_threads)  # later builds leave a core to requests
        keys = KeyRing.open_access() if open_access else KeyRing.for_home(home)
    except (LifelongrecError, OSError) as exc:
        _fail(exc)
    app_ = create_app(service, keys, own_service=True)  # its lifespan runs the learner
    typer.echo(serve_banner(host, port, keys, service.live_version))
    try:
        run_server(
            app_,
            host,
            port,
            limits,
            switch_interval=switch_interval_ms / 1000,
            freeze=gc_freeze,
        )
    finally:
        service.close()
