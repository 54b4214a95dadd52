"""The home folder: its files, its settings, and the first start.

One home folder holds everything (DESIGN, "Storage and scale")::

    HOME/events.sqlite    the event store (every acknowledged event and the catalogue)
    HOME/registry/        the model registry (versions, champion pointer, history)
    HOME/keys.json        API keys (see lifelongrec.serving._auth)
    HOME/service.json     the settings (ServiceConfig) of the last start, used by the
                          next start unless it is given settings
    HOME/erasures.jsonl   erased users as keyed hashes (see lifelongrec.serving._erasure)
    HOME/erasure.key      the key of those hashes
    HOME/scrubbed.json    which registered versions were rewritten without erased users

A new home folder is created with mode 0700 and its files 0600: events, keys and the
erasure log are for the service's user only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import Dataset, EventStore, load, open_store, synthetic
from lifelongrec.models import get_model
from lifelongrec.registry import ModelRegistry
from lifelongrec.serving._config import ServiceConfig
from lifelongrec.serving._erasure import ERASURE_KEY_FILE, ERASURES_FILE, SCRUBBED_FILE
from lifelongrec.serving._live import READ_CHUNK, catch_up_items

__all__ = [
    "CONFIG_FILE",
    "REGISTRY_DIR",
    "STORE_FILE",
    "first_start",
    "open_home",
    "open_event_store",
    "read_settings",
    "save_settings",
]

log = logging.getLogger("lifelongrec.serving")

STORE_FILE = "events.sqlite"
CONFIG_FILE = "service.json"
REGISTRY_DIR = "registry"


def read_settings(home: Path, config: ServiceConfig | Mapping[str, Any] | None) -> ServiceConfig:
    """The settings to start with: ``config`` (a :class:`ServiceConfig` or a dict, flat
    or grouped), else those the last start saved in ``HOME/service.json`` (flat, as
    every version wrote them), else the defaults; checked.

    Raises
    ------
    DataError
        ``service.json`` is not valid JSON.
    ParameterError
        A bad setting, or ``config`` of another type.
    """
    saved = home / CONFIG_FILE
    if config is None and saved.is_file():
        try:
            config = json.loads(saved.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(
                "not valid JSON", path=saved, line=exc.lineno, expected="service settings"
            ) from None
    if config is None:
        config = ServiceConfig()
    elif isinstance(config, Mapping):
        config = ServiceConfig.from_dict(config)
    elif not isinstance(config, ServiceConfig):
        raise ParameterError("config", type(config).__name__, "a ServiceConfig or a dict")
    config = config.validate()
    if saved.is_file() and (home / REGISTRY_DIR).is_dir():
        kept = _saved_store_url(saved)
        if kept != config.store.url:
            raise ParameterError(
                "store_url",
                config.store.url,
                f"{kept!r}, the store this home folder's models learned from (a home "
                "folder keeps its store; start a new home for another)",
            )
    return config


def _saved_store_url(saved: Path) -> str | None:
    try:
        return json.loads(saved.read_text()).get("store_url")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def open_event_store(home: Path, config: ServiceConfig) -> EventStore:
    """The event store of a home folder: ``HOME/events.sqlite``, or the PostgreSQL
    store its settings name (``store_url``)."""
    if config.store.url is not None:
        return open_store(config.store.url)
    return EventStore(home / STORE_FILE)


def save_settings(home: Path, config: ServiceConfig) -> None:
    """Save the settings for the next start (atomically, mode 0600)."""
    saved = home / CONFIG_FILE
    tmp = saved.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    os.replace(tmp, saved)


def open_home(home: Path) -> None:
    """Create the home folder (mode 0700) when absent; make the private files an older
    version left readable by others the owner's only (mode 0600).

    Raises
    ------
    ParameterError
        ``home`` exists and is not a folder.
    """
    if home.exists() and not home.is_dir():
        raise ParameterError("home", str(home), "a folder (or a path to create one at)")
    if not home.exists():
        home.mkdir(parents=True)
        os.chmod(home, 0o700)  # events, keys and erasures: the owner's only
    names = (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", CONFIG_FILE)
    for name in (*names, "keys.json", ERASURES_FILE, ERASURE_KEY_FILE, SCRUBBED_FILE):
        path = home / name
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)


def first_start(
    store: EventStore, registry: ModelRegistry, config: ServiceConfig, data: str | Dataset
) -> None:
    """Put ``data`` (a path, ``"synthetic"`` or a Dataset) into the store and register
    a first champion trained on it."""
    if isinstance(data, Dataset):
        dataset = data
    elif str(data) == "synthetic":
        dataset = synthetic(n_events=config.store.synthetic_events, seed=config.store.seed)
    else:
        dataset = load(Path(data))
    events = dataset.events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if store.n_events == 0:
        for s in range(0, len(events), READ_CHUNK):
            store.append(events.iloc[s : s + READ_CHUNK])
    if dataset.items is not None and len(dataset.items):
        store.upsert_items(dataset.items)
    stored = store.to_dataset()
    log.info("training the first champion on %d events", len(stored.events))
    t0 = time.perf_counter()
    model = get_model(config.model, **dict(config.model_params)).fit(stored)
    seconds = time.perf_counter() - t0
    # The catalogue's items without events yet are admitted now (content only), so the
    # registered version holds the whole catalogue: a start does not admit them again.
    if stored.items is not None and len(stored.items):
        catch_up_items(model, stored.items)
    ts = stored.events["timestamp"]
    registry.register(
        model,
        window=(int(ts.min()), int(ts.max())),
        data={"last_seq": int(store.last_seq), "n_events": len(stored.events)},
        tags={"source": str(data) if not isinstance(data, Dataset) else "dataset"},
        metrics={"fit_seconds": round(seconds, 3)},
        status="champion",
        reason="first start: trained on the initial data",
    )
