"""Online experiments in the service: a challenger from the registry faces the live
champion with real users until an always-valid sequential test decides.

An experiment (``POST /experiments``) names one or more challengers, each a registry
version, and a design:

* ``ab``: every user is assigned to one arm for the whole experiment, sticky, by a hash
  of their id and the experiment's id (:func:`~lifelongrec.evaluation.assign_arm`,
  applied to the arms' cumulative traffic shares), and gets that arm's answer;
* ``interleaving``: every answer merges the champion's and the (one) challenger's
  lists by team draft (:func:`~lifelongrec.evaluation.team_draft`); each item remembers
  the ranker that contributed it, or that both proposed it in the same round (it is
  then served, logged and counted as the champion's, and credits neither).

**Serving a challenger** (:mod:`~._challengers`): its version is loaded from the
registry and answers through the champion's recommendation path over a slot of its own,
following every written event. Catalogue items upserted during
the experiment are served by the champion only (the challenger ranks the catalogue it
was loaded with). An erasure reaches the challengers too
(:meth:`Experiments.forget_user`).

**Counting.** Counts are kept as the answers and the events happen, in memory, and
stored in ``HOME/experiments.sqlite`` by the experiment thread every
``experiment_tick_seconds`` (and at every change of state): a request only adds to a
few counters under a leaf lock, and a feedback event only looks its answer up in a
dict. The store's :meth:`~lifelongrec.data.EventStore.online_metrics` would give the
same per-arm figures (the impression log records each item's arm as
``"<experiment id>:<arm>"``), but it joins every feedback event of the store to the
impressions on every call: too costly to repeat every few seconds on a large store, and
it gives per-arm sums, not the per-answer outcomes the test needs. A feedback event
counts when it names the ``request_id`` of an experiment answer that showed its item to
its user, or, without a request id, for the latest experiment answer that showed the
item to the user at most ``attribution_window`` seconds before it (the store's rules);
a click counts once per shown item, every conversion event counts. The last
``experiment_track_requests`` answers are remembered for this (after a restart, clicks
on answers from before it are not counted), and event ids already counted are not
counted again.

**The test** is the service's side of :func:`~lifelongrec.evaluation.run_experiment`,
with its statistics (:func:`~lifelongrec.evaluation.sequential_look`): the unit is one
answer. Under A/B its outcome is the answer's CTR (items clicked over items shown; or
conversions over items shown with ``primary_metric="conversion"``), and each challenger
is compared with the champion by the mSPRT of the difference of mean outcomes (variance
pooled, ``alpha`` split evenly between the challengers); under interleaving the
outcome is the answer's credit (+1 challenger, -1 champion, 0 tie:
:func:`~lifelongrec.evaluation.interleaving_credit`) tested for a mean of zero. An
answer counts from the moment it is shown, its outcome is revised as its clicks come.
The p-value is always valid: the experiment is looked at every tick and on every
``GET`` without inflating false positives.

**Decisions.** Nothing is decided before every arm has ``min_impressions`` impressions.
A challenger significantly worse, or breaching a guardrail (its p99 latency over
``max_p99_ratio`` times the champion's or over ``max_p99_ms``; its error rate over
``max_error_rate``, errors being failures of the challenger, whose requests the
champion then answers), is rejected; one significantly better and within its
guardrails is promoted through the service's lifecycle (the path of ``POST
/models/{version}/promote``) when ``auto`` is on; without ``auto`` the verdict is only
reported. The experiment ends ``promoted``, ``rejected`` (every challenger rejected),
or ``stopped`` (``POST /experiments/{id}/stop``, ``max_seconds`` reached, or the
champion changed by another path). The promotion gate is the first filter: a version
the gate rejected cannot be a challenger unless the request says ``force``. One
experiment runs at a time.

The records (an experiment, its arms and their counts, the SQLite file, the checks of a
new experiment's arms and guardrails) are in :mod:`~._experiment_records`.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelongrec._errors import LifelongrecError, ParameterError, UnknownIdError
from lifelongrec.evaluation import (
    MSPRT_TAU,
    assign_arm,
    interleaving_credit,
    sequential_look,
    team_draft,
)
from lifelongrec.registry import ModelRegistry, RegistryError
from lifelongrec.serving._challengers import Challenger, ChallengerLoader
from lifelongrec.serving._config import ServiceConfig
from lifelongrec.serving._experiment_records import (
    DESIGNS,
    LATENCY_EDGES_MS,
    METRICS,
    Arm,
    Experiment,
    ExperimentBook,
    check_guardrails,
    guardrail_breach,
    make_arms,
)
from lifelongrec.serving._queries import Queries

__all__ = [
    "EXPERIMENTS_FILE",
    "Answer",
    "ExperimentConflict",
    "Experiments",
]

log = logging.getLogger("lifelongrec.serving")

EXPERIMENTS_FILE = "experiments.sqlite"


class ExperimentConflict(RegistryError):
    """The experiments' state does not allow it (a second running experiment, a
    version the promotion gate rejected, stopping an experiment that has ended): 409."""


# ------------------------------------------------------------------ answers
@dataclass
class _Shown:
    """An experiment answer, remembered for the feedback that follows it."""

    experiment: Experiment
    user: str
    items: dict[str, int]  # item -> position
    arms: list[Arm]  # per position: the arm (A/B) or the team (interleaving)
    time: int
    neutral: frozenset[int] = frozenset()  # positions both rankers proposed (interleaving)
    clicked: set[int] = field(default_factory=set)
    converted: dict[int, int] = field(default_factory=dict)
    outcome: float = 0.0  # as counted in the arm's Moments (A/B) or the credits


@dataclass
class Answer:
    """What :meth:`Experiments.answer` gives the service: the answer, and per item the
    version and the arm label for the impression log."""

    out: dict[str, Any]
    versions: list[str]
    arms: list[str]


Ask = Callable[[Queries, bool], dict[str, Any]]


class Experiments:
    """The service's online experiments (see the module docstring).

    Parameters
    ----------
    home
        The home folder (``experiments.sqlite`` is there).
    registry
        The registry (challenger versions, the gate's decisions, the champion).
    loader
        Loads challengers.
    promote
        ``promote(version, reason)``: the service's promotion path.
    config
        The service's settings (``experiments`` and ``feedback`` groups).
    """

    def __init__(
        self,
        home: Path,
        registry: ModelRegistry,
        loader: ChallengerLoader,
        promote: Callable[[str, str], Any],
        config: ServiceConfig,
    ) -> None:
        self.registry = registry
        self.loader = loader
        self.promote = promote
        self.settings = config.experiments
        self.feedback = config.feedback
        self.book = ExperimentBook(Path(home) / EXPERIMENTS_FILE)
        self._experiments: dict[str, Experiment] = {}
        # The running experiment and its challengers by arm name, replaced as one
        # reference (a request reads it without a lock).
        self._running: tuple[Experiment, dict[str, Challenger]] | None = None
        self._mutex = threading.Lock()  # a leaf lock: counts and remembered answers
        self._admin = threading.RLock()  # create, stop, look: one at a time
        self._answers: OrderedDict[str, _Shown] = OrderedDict()
        self._latest: dict[tuple[str, str], str] = {}  # (user, item) -> request id
        self._counted: OrderedDict[str, None] = OrderedDict()  # event ids counted
        self._new_users: set[tuple[str, str, str]] = set()
        self._dirty: set[str] = set()  # experiments whose counts changed since stored
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        for rec in self.book.load():
            try:
                e = Experiment.from_record(rec)
            except (TypeError, KeyError, ValueError):  # not a record this version wrote
                log.warning("skipping an unreadable experiment record in %s", self.book.path)
                continue
            self._experiments[e.id] = e

    @property
    def running(self) -> str | None:
        """The running experiment's id (``None``: none runs)."""
        running = self._running
        return None if running is None else running[0].id

    # ------------------------------------------------------------ opening
    def resume(self, champion: str) -> None:
        """After a restart: serve the running experiment's challengers again, or stop
        it when the champion changed or a challenger cannot be loaded."""
        with self._admin:
            for e in self._experiments.values():
                if not e.running:
                    continue
                if champion != e.champion_version:
                    self._end(e, "stopped", f"the champion changed to {champion} meanwhile")
                    continue
                try:
                    serving = self._serve(e)
                except Exception as exc:  # noqa: BLE001 - the service starts anyway
                    log.exception("experiment %s: a challenger could not be loaded", e.id)
                    self._end(e, "stopped", f"a challenger could not be loaded: {exc}")
                    continue
                self._running = (e, serving)
            self._save()

    def start(self) -> None:
        """Start the experiment thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="experiments", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and store every count."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        with self._admin:
            if self._closed:
                return
            self._save()
            self.book.close()
            self._closed = True

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.tick_seconds):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - logged; the next tick tries again
                log.exception("looking at the running experiment failed")

    # -------------------------------------------------------------- the API
    def create(
        self,
        name: str,
        arms: Sequence[Mapping[str, Any]],
        *,
        champion: str,
        design: str = "ab",
        primary_metric: str = "ctr",
        alpha: float = 0.05,
        tau: float | None = None,
        auto: bool = True,
        min_impressions: int | None = None,
        max_seconds: float | None = None,
        guardrails: Mapping[str, float | None] | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Start an experiment of the live ``champion`` against the challengers of
        ``arms`` (see :meth:`RecommenderService.create_experiment`)."""
        if not isinstance(name, str) or not name.strip():
            raise ParameterError("name", name, "a non-empty text")
        if design not in DESIGNS:
            raise ParameterError("design", design, f"one of {list(DESIGNS)}")
        if primary_metric not in METRICS:
            raise ParameterError("primary_metric", primary_metric, f"one of {list(METRICS)}")
        if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
            raise ParameterError("alpha", alpha, "a number in (0, 1)")
        if tau is not None and not (isinstance(tau, (int, float)) and 0 < tau < math.inf):
            raise ParameterError("tau", tau, "None or a positive number")
        if max_seconds is not None and not (
            isinstance(max_seconds, (int, float)) and 0 < max_seconds < math.inf
        ):
            raise ParameterError("max_seconds", max_seconds, "None or a positive number")
        minimum = self.settings.min_impressions if min_impressions is None else min_impressions
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
            raise ParameterError("min_impressions", min_impressions, "an integer >= 1")
        rails = check_guardrails(guardrails)
        made = make_arms(arms, design)
        for a in made:
            if a.version is not None:
                self._check_version(a, champion, force)
        now = round(time.time(), 3)
        e = Experiment(
            id=f"exp-{uuid.uuid4().hex[:12]}",
            name=name.strip(),
            design=design,
            arms=made,
            primary_metric=primary_metric,
            alpha=float(alpha),
            tau=float(tau if tau is not None else MSPRT_TAU * (1 if design == "ab" else 5)),
            auto=bool(auto),
            min_impressions=int(minimum),
            max_seconds=None if max_seconds is None else float(max_seconds),
            guardrails=rails,
            champion_version=champion,
            forced=bool(force),
            created_at=now,
            updated_at=now,
        )
        with self._admin:
            if self._running is not None:
                raise ExperimentConflict(
                    f"experiment {self._running[0].id} is running; stop it first (POST "
                    f"/experiments/{self._running[0].id}/stop): one experiment runs at a time"
                )
            serving = self._serve(e)
            self._experiments[e.id] = e
            self._running = (e, serving)
            self._save([e])
            log.info("experiment %s started: %s", e.id, [a.name for a in made])
            return e.view()

    def _serve(self, e: Experiment) -> dict[str, Challenger]:
        """Load the running challengers of ``e`` (all or none)."""
        serving: dict[str, Challenger] = {}
        try:
            for a in e.arms:
                if a.version is not None and a.status == "running":
                    serving[a.name] = self.loader.load(a.version)
        except BaseException:
            for ch in serving.values():
                self.loader.drop(ch)
            raise
        return serving

    def _check_version(self, arm: Arm, champion: str, force: bool) -> None:
        """The version exists, is not the champion, and passed the gate (or ``force``)."""
        text = str(arm.version)
        if text.lstrip("v").isdigit() and int(text.lstrip("v")) == 0:
            raise UnknownIdError("version", [text], hint="version numbers start at 1")
        try:
            info = self.registry.info(text)
        except UnknownIdError:
            ids = [v.version for v in self.registry.versions()]
            span = f"{ids[0]}..{ids[-1]}" if ids else "none"
            raise UnknownIdError(
                "version", [text], hint=f"the registry holds versions {span}"
            ) from None
        arm.version = info.version
        if info.version == champion:
            raise ExperimentConflict(
                f"arm {arm.name!r}: {info.version} is the champion already; a challenger "
                "is another version"
            )
        decision = info.decision or {}
        if not force and (info.registered_as == "rejected" or decision.get("promoted") is False):
            why = decision.get("reason") or "registered as rejected"
            raise ExperimentConflict(
                f"arm {arm.name!r}: the promotion gate rejected {info.version} ({why}); "
                "the offline gate is the first filter: send force=true to test it online "
                "anyway"
            )

    def list(self) -> list[dict[str, Any]]:
        """Every experiment, newest first (the running one looked at now)."""
        self.look()
        with self._admin, self._mutex:
            found = sorted(self._experiments.values(), key=lambda e: -e.created_at)
            return [e.view() for e in found]

    def get(self, experiment_id: str) -> dict[str, Any]:
        """See :meth:`RecommenderService.experiment`."""
        e = self._find(experiment_id)
        if e.running:
            self.look()
        with self._mutex:
            return e.view()

    def stop(self, experiment_id: str, reason: str = "stopped through the API") -> dict[str, Any]:
        """See :meth:`RecommenderService.stop_experiment`."""
        e = self._find(experiment_id)
        with self._admin:
            if not e.running:
                raise ExperimentConflict(
                    f"experiment {e.id} has ended already ({e.status}: {e.reason})"
                )
            self._look(e)  # the last verdict, on every count
            self._end(e, "stopped", reason)
            self._save()
        with self._mutex:
            return e.view()

    def _find(self, experiment_id: str) -> Experiment:
        e = self._experiments.get(str(experiment_id))
        if e is None:
            raise UnknownIdError(
                "experiment", [str(experiment_id)], hint="GET /experiments lists them"
            )
        return e

    # -------------------------------------------------------------- serving
    def answer(
        self, request_id: str, user_id: str, ask: Ask, champion: Queries, details: bool
    ) -> Answer | None:
        """The running experiment's answer to a user, counted at once (``None``: no
        experiment runs, or the user is outside it now): ``ask(queries, details)`` asks
        one ranker; ``details`` whether the answer wants titles and categories."""
        running = self._running
        if running is None:
            return None
        e, serving = running
        uid = str(user_id)
        if e.design == "ab":
            arm = self._assign(e, uid)
            if arm is None:
                return None
            if arm.version is None:
                out, took = _timed(ask, champion, details)
            else:
                out, took = self._challenger(e, arm, serving[arm.name], ask, details)
                if out is None:  # it failed: the champion answers, outside the experiment
                    return None
            teams = [arm] * len(out["items"])
            neutral: frozenset[int] = frozenset()
            timings = [(arm, took)]
            out["experiment"] = {"id": e.id, "arm": arm.name}
        else:
            champ, chall = e.arms[0], e.arms[1]
            a, took_a = _timed(ask, champion, False)
            b, took_b = self._challenger(e, chall, serving[chall.name], ask, False)
            if b is None:
                return None
            merged, team = team_draft(
                [i["item_id"] for i in a["items"]],
                [i["item_id"] for i in b["items"]],
                max(len(a["items"]), len(b["items"])),
                np.random.default_rng(int(request_id[:16], 16)),  # the coins, per answer
            )
            by_team = {t: {i["item_id"]: i for i in x["items"]} for t, x in (("a", a), ("b", b))}
            by_team["both"] = by_team["a"]
            items = [by_team[t][i] for i, t in zip(merged, team, strict=True)]
            if details:
                champion.add_details(items)
            out = {**a, "cold_start": a["cold_start"] and b["cold_start"], "items": items}
            out["experiment"] = {"id": e.id, "arm": "interleaved"}
            teams = [chall if t == "b" else champ for t in team]
            neutral = frozenset(p for p, t in enumerate(team) if t == "both")
            timings = [(champ, took_a), (chall, took_b)]
        self._count(e, request_id, uid, out["items"], teams, timings, neutral)
        versions = [e.champion_version if t.version is None else t.version for t in teams]
        return Answer(out, versions, [e.label(t) for t in teams])

    def _assign(self, e: Experiment, user_id: str) -> Arm | None:
        """The user's arm: sticky, by :func:`assign_arm` on the cumulative shares of
        the challengers, the champion last (``None``: the user's arm was rejected; the
        champion serves them outside the experiment)."""
        total = 0.0
        for arm in e.arms[1:]:
            total += arm.share or 0.0
            if assign_arm(user_id, e.id, total) == "b":
                return arm if arm.status == "running" else None
        return e.arms[0]

    def _challenger(
        self, e: Experiment, arm: Arm, challenger: Challenger, ask: Ask, details: bool
    ) -> tuple[dict[str, Any] | None, float]:
        """A challenger's answer; a failure of its own (not a bad request, which the
        champion answers the same way) is counted as an error and gives ``None``."""
        t0 = time.perf_counter()
        try:
            return ask(challenger.queries, details), time.perf_counter() - t0
        except LifelongrecError:
            return None, 0.0
        except Exception:  # noqa: BLE001 - counted; the guardrail decides about it
            log.exception("challenger %s failed to answer", arm.version)
            with self._mutex:
                arm.requests += 1
                arm.errors += 1
                self._dirty.add(e.id)
            return None, 0.0

    def _count(
        self,
        e: Experiment,
        request_id: str,
        user_id: str,
        items: list[dict[str, Any]],
        arms: list[Arm],
        latency: list[tuple[Arm, float]],
        neutral: frozenset[int] = frozenset(),
    ) -> None:
        shown = _Shown(
            e,
            user_id,
            {str(i["item_id"]): p for p, i in enumerate(items)},
            arms,
            int(time.time()),
            neutral,
        )
        with self._mutex:
            if not e.running:  # ended while this answer was made
                return
            for arm, took in latency:
                arm.requests += 1
                arm.latency[bisect.bisect_left(LATENCY_EDGES_MS, took * 1000.0)] += 1
                self._new_users.add((e.id, arm.name, user_id))
            for arm in arms:
                arm.impressions += 1
            e.neutral_impressions += len(neutral)
            if e.design == "ab":
                latency[0][0].outcome.add(0.0)  # an empty answer is an answer too
            else:
                e.credits.add(0.0)
            self._answers[request_id] = shown
            for item in shown.items:
                self._latest[(user_id, item)] = request_id
            while len(self._answers) > self.settings.track_requests:
                old_id, old = self._answers.popitem(last=False)
                for item in old.items:
                    if self._latest.get((old.user, item)) == old_id:
                        del self._latest[(old.user, item)]
            self._dirty.add(e.id)

    # ------------------------------------------------------------- feedback
    def observe(
        self,
        users: Sequence[str],
        items: Sequence[str],
        timestamps: Sequence[int],
        types: Sequence[str],
        event_ids: Sequence[str | None] | None,
        request_ids: Sequence[str | None] | None,
    ) -> int:
        """Count stored feedback events for the answers they are attributed to (see the
        module docstring); returns how many counted."""
        if self._running is None:  # an ended experiment counts nothing more
            return 0
        clicks = set(self.feedback.click_types)
        conversions = set(self.feedback.conversion_types)
        window = int(self.feedback.attribution_window)
        n = 0
        with self._mutex:
            for j, (u, i, t, kind) in enumerate(zip(users, items, timestamps, types, strict=True)):
                if kind not in clicks and kind not in conversions:
                    continue
                eid = None if event_ids is None else event_ids[j]
                if eid is not None:
                    if eid in self._counted:
                        continue
                    self._counted[eid] = None
                    if len(self._counted) > self.settings.track_requests:
                        self._counted.popitem(last=False)
                rid = None if request_ids is None else request_ids[j]
                shown = self._attributed(str(u), str(i), int(t), rid, window)
                if shown is None or not shown.experiment.running:
                    continue
                pos = shown.items[str(i)]
                self._credit(shown, pos, kind in clicks, kind in conversions)
                self._dirty.add(shown.experiment.id)
                n += 1
        return n

    def _attributed(
        self, user: str, item: str, t: int, request_id: str | None, window: int
    ) -> _Shown | None:
        if request_id is not None:
            shown = self._answers.get(request_id)
            if shown is None or shown.user != user or item not in shown.items:
                return None
            return shown
        rid = self._latest.get((user, item))
        shown = None if rid is None else self._answers.get(rid)
        if shown is None or not (shown.time <= t <= shown.time + window):
            return None
        return shown

    def _credit(self, shown: _Shown, pos: int, click: bool, conversion: bool) -> None:
        e = shown.experiment
        arm = shown.arms[pos]
        if click and pos not in shown.clicked:
            shown.clicked.add(pos)
            arm.clicks += 1
        if conversion:
            shown.converted[pos] = shown.converted.get(pos, 0) + 1
            arm.conversions += 1
        if e.design == "ab":
            hits = (
                len(shown.clicked) if e.primary_metric == "ctr" else sum(shown.converted.values())
            )
            new = hits / len(shown.items)
            arm.outcome.revise(shown.outcome, new)
        else:
            hit = shown.clicked if e.primary_metric == "ctr" else set(shown.converted)
            teams = [
                "both" if p in shown.neutral else "a" if a.version is None else "b"
                for p, a in enumerate(shown.arms)
            ]
            new = float(interleaving_credit(teams, [p in hit for p in range(len(teams))]))
            e.credits.revise(shown.outcome, new)
        shown.outcome = new

    # -------------------------------------------------------------- looking
    def tick(self) -> None:
        """One look at the running experiment, then store the counts (the experiment
        thread calls it every ``experiment_tick_seconds``)."""
        running = self._running
        if running is not None:
            for ch in running[1].values():
                ch.users.take_evicted()  # nobody trains it: forget the list
            self.look()
        else:
            with self._admin:
                self._save()

    def look(self) -> None:
        """Compute the running experiment's verdict now and act on it (``auto``)."""
        with self._admin:
            running = self._running
            if running is None:
                return
            e, serving = running
            action = self._look(e)
            out = [n for n in serving if e.arm(n).status != "running"]
            if action is None and out:  # a rejected challenger stops serving
                self._running = (e, {n: c for n, c in serving.items() if n not in out})
                for n in out:
                    self.loader.drop(serving[n])
            if action is not None:
                status, reason, version = action
                self._end(e, status, reason)
                if version is not None:
                    try:
                        self.promote(version, f"experiment {e.id}: {reason}")
                    except LifelongrecError as exc:
                        e.reason += f"; the promotion failed: {exc}"
                        e.status = "stopped"
                        log.warning("experiment %s: promotion failed: %s", e.id, exc)
            self._save()

    def _look(self, e: Experiment) -> tuple[str, str, str | None] | None:
        """The verdict of every running challenger; what to do about it: ``(status,
        reason, version to promote)`` or ``None`` (go on)."""
        now = time.time()
        live = self.registry.champion()
        with self._mutex:
            e.looks += 1
            e.updated_at = round(now, 3)
            champ = e.arms[0]
            active = [a for a in e.arms[1:] if a.status == "running"]
            alpha = e.alpha / max(len(e.arms) - 1, 1)  # split between the challengers
            better: list[Arm] = []
            for arm in active:
                if e.design == "ab":
                    pair = {"a": champ.outcome, "b": arm.outcome}
                    v = sequential_look("ab", pair, None, e.tau, alpha, arm.p_value)
                else:
                    v = sequential_look("interleave", {}, e.credits, e.tau, alpha, arm.p_value)
                arm.p_value = v.p_value
                ready = min(champ.impressions, arm.impressions) >= e.min_impressions
                breach = guardrail_breach(e.guardrails, champ, arm)
                if breach is not None:
                    decision = "guardrail_breached"
                elif ready and v.reject:
                    decision = "challenger_better" if v.effect > 0 else "challenger_worse"
                else:
                    decision = "continue"
                arm.verdict = {
                    "decision": decision,
                    "p_value": v.p_value,
                    "effect": v.effect,
                    "ci": [_finite(v.ci_low), _finite(v.ci_high)],
                    "arm": arm.name,
                    "breach": breach,
                }
                if e.auto and decision in ("guardrail_breached", "challenger_worse"):
                    arm.status = "rejected"
                    word = breach if breach is not None else "significantly worse"
                    arm.verdict["reason"] = f"{arm.name} ({arm.version}): {word}"
                if decision == "challenger_better" and breach is None:
                    better.append(arm)
            judged = [a for a in e.arms[1:] if a.verdict is not None]
            if judged:
                top = (
                    max(better, key=lambda a: a.verdict["effect"])
                    if better
                    else min(judged, key=lambda a: (a.status != "rejected", a.p_value))
                )
                e.verdict = {k: v for k, v in top.verdict.items() if k != "breach"}
            if e.auto and better:
                best = max(better, key=lambda a: a.verdict["effect"])
                v = best.verdict
                return (
                    "promoted",
                    f"{best.name} ({best.version}) is better on {e.primary_metric}: effect "
                    f"{v['effect']:+.4f} per answer, always-valid p = {v['p_value']:.4g}",
                    best.version,
                )
            if e.auto and all(a.status == "rejected" for a in e.arms[1:]):
                why = "; ".join(a.verdict.get("reason", "") for a in e.arms[1:] if a.verdict)
                return "rejected", why, None
            if live != e.champion_version:
                return "stopped", f"the champion changed to {live} by another path", None
            if e.max_seconds is not None and now - e.created_at >= e.max_seconds:
                return (
                    "stopped",
                    f"max_seconds ({e.max_seconds:g}) reached without a decision",
                    None,
                )
        return None

    def _end(self, e: Experiment, status: str, reason: str) -> None:
        """End ``e`` (the admin lock is held): its challengers stop serving."""
        running = self._running
        if running is not None and running[0] is e:
            self._running = None
            for ch in running[1].values():
                self.loader.drop(ch)
        with self._mutex:
            e.status = status
            e.reason = reason
            e.ended_at = e.updated_at = round(time.time(), 3)
            self._dirty.add(e.id)
            if self._running is None:  # nothing to attribute feedback to any more
                self._answers.clear()
                self._latest.clear()
        log.info("experiment %s %s: %s", e.id, status, reason)

    def _save(self, extra: Sequence[Experiment] = ()) -> None:
        """Store the running experiment, those changed since the last time and
        ``extra`` (the admin lock is held)."""
        with self._mutex:
            users, self._new_users = list(self._new_users), set()
            dirty, self._dirty = self._dirty, set()
            todo = {e.id: e for e in extra}
            todo |= {i: self._experiments[i] for i in dirty if i in self._experiments}
            running = self._running
            if running is not None:
                todo[running[0].id] = running[0]
            records = list(todo.values())
        if records or users:
            self.book.save(records, users)

    # ------------------------------------------------------------- erasure
    def forget_user(self, user_id: str) -> bool:
        """Remove an erased user from the running challengers (the caller holds the
        erase lock); whether one held them."""
        running = self._running
        if running is None:
            return False
        held = False
        for ch in running[1].values():
            held = self.loader.forget_user(ch, user_id) or held
        return held


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _timed(ask: Ask, queries: Queries, details: bool) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    out = ask(queries, details)
    return out, time.perf_counter() - t0
