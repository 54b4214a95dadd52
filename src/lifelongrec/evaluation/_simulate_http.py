"""The closed-loop world against a running service, over HTTP.

:func:`drive_service` plays the simulated days of :class:`ClosedLoopWorld` against a
service (``lifelongrec serve``, or :func:`~lifelongrec.serving.serve_in_thread` in a
test or benchmark) as its users would: each hour's sessions first browse on their own
(``POST /events``), then every session asks ``GET /users/{id}/recommendations`` and the
world's user reacts to the answer (:meth:`ClosedLoopWorld.react`); the reactions go back
to ``POST /events`` naming the answer's ``request_id``, so the service's impression log,
online metrics and running experiment see them as they would a shop's. New items of a
day go to ``PUT /items`` (waiting until they are recommendable) before its first hour.

The service learns by itself (its learner, if it runs) and decides by itself (its
experiment, if one runs): the driver only plays the users. The per-day figures are those
of :func:`~lifelongrec.evaluation.simulate` (the shared
:class:`~lifelongrec.evaluation.DayTally`), without the update's CPU, plus which model
versions and experiment arms answered. The service must know the world's catalogue
(start it on :meth:`ClosedLoopWorld.history`); an answer with an item the world does not
have is an error.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lifelongrec._errors import LifelongrecError, ParameterError
from lifelongrec.evaluation._simulate import (
    ClosedLoopWorld,
    DayTally,
    SimulationSettings,
    _summary,
)

__all__ = ["ServiceCallError", "drive_service"]

#: Events per ``POST /events`` (well under the service's ``max_batch`` default).
EVENT_BATCH = 500
#: Items per ``PUT /items``.
ITEM_BATCH = 500


class ServiceCallError(LifelongrecError, RuntimeError):
    """The service answered an error, or could not be reached: names the request, the
    status and the body, and what was expected.

    Attributes
    ----------
    status
        The HTTP status (``None``: no answer).
    body
        The answer's body (text), or the transport error.
    """

    def __init__(self, request: str, status: int | None, body: str, expected: str) -> None:
        self.status = status
        self.body = body
        got = "no answer" if status is None else f"HTTP {status}"
        hint = ""
        if status == 401:
            hint = " (pass an API key with the read and write scopes: api_key=, --api-key)"
        elif status == 403:
            hint = " (the API key lacks a scope: the driver needs read and write)"
        super().__init__(f"{request}: {got}: {body[:500]}{hint}; expected {expected}")


class _Client:
    """One keep-alive HTTP client and the calls the driver makes."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        import httpx

        self._httpx = httpx
        headers = {} if api_key is None else {"X-API-Key": api_key}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.url = url.rstrip("/")
        self.requests = 0

    def call(
        self, method: str, path: str, expected: tuple[int, ...], **kwargs: Any
    ) -> dict[str, Any]:
        what = f"{method} {self.url}{path}"
        try:
            r = self.http.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            raise ServiceCallError(
                what, None, f"{type(exc).__name__}: {exc}", "a running service at that address"
            ) from exc
        self.requests += 1
        if r.status_code not in expected:
            raise ServiceCallError(
                what, r.status_code, r.text, f"HTTP {' or '.join(map(str, expected))}"
            )
        return r.json()

    def events(self, rows: Sequence[tuple], ids: Sequence[str], request: str | None) -> None:
        for s in range(0, len(rows), EVENT_BATCH):
            body = [
                {
                    "user_id": str(u),
                    "item_id": str(i),
                    "timestamp": int(t),
                    "event_type": kind,
                    "event_id": eid,
                    **({} if request is None else {"request_id": request}),
                }
                for (u, i, t, kind), eid in zip(
                    rows[s : s + EVENT_BATCH], ids[s : s + EVENT_BATCH], strict=True
                )
            ]
            self.call("POST", "/events", (201,), json={"events": body})

    def close(self) -> None:
        self.http.close()


def drive_service(
    url: str,
    settings: SimulationSettings | None = None,
    *,
    api_key: str | None = None,
    days: int | None = None,
    until: Callable[[], bool] | None = None,
    notify: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Play the closed-loop world of ``settings`` against the service at ``url`` (see
    the module docstring); returns ``{"settings", "url", "days": [per-day dict],
    "summary", "requests", "stopped_early", "wall_seconds"}``.

    Each day's record has the figures of :func:`~lifelongrec.evaluation.simulate`
    (``day``, ``sessions``, ``active_users``, ``impressions``, ``clicks``, ``ctr``,
    ``purchases``, ``purchases_per_user``, ``coverage``, ``exposure_gini``), and
    ``answers`` (recommendation requests), ``cold_start`` (answers for a user the
    service did not know), ``events`` (sent: browsing and reactions), ``reactions``
    (of those, the reactions to answers, sent with the answer's ``request_id``), ``versions``
    (answers by ``model_version``), ``arms`` (answers by ``"<experiment id>:<arm>"``,
    those in an experiment) and ``complete`` (``False`` for a day ``until`` cut short).

    Parameters
    ----------
    url
        The service's address, e.g. ``http://127.0.0.1:8000``.
    settings
        The world (``None``: the defaults); the service should have been started on its
        :meth:`ClosedLoopWorld.history`.
    api_key
        Sent as ``X-API-Key``: a key with the read and write scopes (``None``: no key,
        for a service without keys).
    days
        Days to play (``None``: ``settings.days``; at most that).
    until
        Called after every simulated hour; when it returns true the run stops there
        (e.g. "the experiment has ended").
    notify
        Called with a line per simulated day.
    timeout
        Seconds each HTTP request may take.

    Raises
    ------
    ServiceCallError
        The service answered an error (its status and body in the message) or could not
        be reached.
    ParameterError
        ``days`` out of range, or an answer with an item the world does not have.
    """
    s = settings if settings is not None else SimulationSettings()
    world = ClosedLoopWorld(s)
    n_days = s.days if days is None else days
    if not isinstance(n_days, int) or isinstance(n_days, bool) or not 1 <= n_days <= s.days:
        raise ParameterError("days", days, f"a whole number from 1 to settings.days ({s.days})")
    run = uuid.uuid4().hex[:10]  # event ids unique to this run: a rerun is new behaviour
    client = _Client(url, api_key, timeout)
    shown_before: dict[tuple[int, str], int] = {}
    bought: set[tuple[int, str]] = set()
    out_days: list[dict[str, Any]] = []
    stopped = False
    t0 = time.perf_counter()
    try:
        for day in range(n_days):
            new = np.flatnonzero(world.item_day == day)
            if day > 0 and len(new):  # day 0's arrivals are in the history's catalogue
                _put_items(client, world, new)
            tally = DayTally(world, day)
            versions: Counter[str] = Counter()
            arms: Counter[str] = Counter()
            cold = n_events = n_reactions = 0
            for start, batch, browsed in world.hours(day):
                tally.hour(batch)
                own = [e for b in browsed for e in b]
                if own:
                    ids = [f"{run}-{day}-{start}-o{j}" for j in range(len(own))]
                    client.events(own, ids, None)
                    n_events += len(own)
                answers = []
                for _t, user in batch:
                    uid = str(world.user_ids[user])
                    answers.append(
                        client.call(
                            "GET",
                            f"/users/{uid}/recommendations",
                            (200,),
                            params={"k": s.k, "details": "false"},
                        )
                    )
                for j, (session, b, answer) in enumerate(zip(batch, browsed, answers, strict=True)):
                    items = [str(i["item_id"]) for i in answer["items"]]
                    versions[str(answer["model_version"])] += 1
                    experiment = answer.get("experiment")
                    if experiment:
                        arms[f"{experiment['id']}:{experiment['arm']}"] += 1
                    cold += bool(answer.get("cold_start"))
                    got = tally.react(start + j, session, b, items, shown_before, bought)
                    if got:
                        ids = [f"{run}-{day}-{start + j}-r{m}" for m in range(len(got))]
                        client.events(got, ids, str(answer["request_id"]))
                        n_events += len(got)
                        n_reactions += len(got)
                if until is not None and until():
                    stopped = True
                    break
            record = tally.record(world.items_on(day))
            record |= {
                "answers": int(sum(versions.values())),
                "cold_start": cold,
                "events": n_events,
                "reactions": n_reactions,
                "versions": dict(versions),
                "arms": dict(arms),
                "complete": not stopped,
            }
            out_days.append(record)
            if notify is not None:
                notify(
                    f"day {day}: CTR {record['ctr']:.4f}, {record['answers']} answers, "
                    f"versions {dict(versions)}" + (" (stopped)" if stopped else "")
                )
            if stopped:
                break
    finally:
        client.close()
    return {
        "settings": s.get_params(),
        "url": client.url,
        "days": out_days,
        "summary": _summary(out_days, s),
        "requests": client.requests,
        "stopped_early": stopped,
        "wall_seconds": time.perf_counter() - t0,
    }


def _put_items(client: _Client, world: ClosedLoopWorld, positions: np.ndarray) -> None:
    """Send the catalogue rows of ``positions`` (``PUT /items``, waiting until they are
    recommendable)."""
    rows = world.catalogue(positions)
    items = [
        {"item_id": str(r.item_id), "title": str(r.title), "categories": list(r.categories)}
        for r in rows.itertuples(index=False)
    ]
    for s in range(0, len(items), ITEM_BATCH):
        client.call(
            "PUT",
            "/items",
            (200,),
            params={"wait": "true"},
            json={"items": items[s : s + ITEM_BATCH]},
        )
