"""The records of online experiments (:mod:`lifelongrec.serving._experiments`): an
experiment and its arms with their counts, their JSON view, the SQLite file they are
stored in (``HOME/experiments.sqlite``), and the checks of a new experiment's arms and
guardrails."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelongrec._errors import ParameterError
from lifelongrec.evaluation import Moments

__all__ = [
    "CHAMPION",
    "DEFAULT_GUARDRAILS",
    "DESIGNS",
    "GUARDRAIL_MIN_REQUESTS",
    "LATENCY_EDGES_MS",
    "METRICS",
    "Arm",
    "Experiment",
    "ExperimentBook",
    "check_guardrails",
    "guardrail_breach",
    "make_arms",
]

DESIGNS = ("ab", "interleaving")
METRICS = ("ctr", "conversion")
STATUSES = ("running", "stopped", "promoted", "rejected")
#: The champion arm's name (its version is the live champion's).
CHAMPION = "champion"
#: Requests an arm needs before its latency and error guardrails are checked (a p99 of
#: fewer is little more than the slowest answer).
GUARDRAIL_MIN_REQUESTS = 100
#: Upper edges (ms) of the latency histogram's buckets: 0.05 ms x 1.25^i, to ~33 s.
LATENCY_EDGES_MS = [0.05 * 1.25**i for i in range(61)]
DEFAULT_GUARDRAILS = {"max_p99_ratio": 3.0, "max_p99_ms": None, "max_error_rate": 0.05}


@dataclass
class Arm:
    """One arm of an experiment and its counts."""

    name: str
    version: str | None  # None: the champion
    share: float | None  # None under interleaving
    status: str = "running"  # "rejected" once a challenger is out
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    requests: int = 0
    errors: int = 0
    users: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))
    outcome: Moments = field(default_factory=Moments)  # per answer (A/B)
    p_value: float = 1.0
    verdict: dict[str, Any] | None = None

    def p99_ms(self) -> float | None:
        """The 99th percentile of the arm's answer latency (the upper edge of its
        histogram bucket), ``None`` before any answer."""
        n = sum(self.latency)
        if n == 0:
            return None
        need, seen = 0.99 * n, 0
        for j, c in enumerate(self.latency):
            seen += c
            if seen >= need:
                edge = LATENCY_EDGES_MS[min(j, len(LATENCY_EDGES_MS) - 1)]
                return round(edge, 3)
        return round(LATENCY_EDGES_MS[-1], 3)

    def record(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "outcome"}
        out["outcome"] = self.outcome.as_list()
        return out

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Arm:
        rec = dict(rec)
        outcome = Moments(*rec.pop("outcome", [0, 0.0, 0.0]))
        return cls(**rec, outcome=outcome)


@dataclass
class Experiment:
    """An experiment: what it compares, how it decides, and where it stands."""

    id: str
    name: str
    design: str
    arms: list[Arm]
    primary_metric: str
    alpha: float
    tau: float
    auto: bool
    min_impressions: int
    max_seconds: float | None
    guardrails: dict[str, float | None]
    champion_version: str
    forced: bool
    created_at: float
    updated_at: float
    ended_at: float | None = None
    status: str = "running"
    reason: str = ""
    looks: int = 0
    credits: Moments = field(default_factory=Moments)  # per answer (interleaving)
    neutral_impressions: int = 0  # items both rankers proposed (interleaving)
    verdict: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def label(self, arm: Arm) -> str:
        """The arm as the impression log records it."""
        return f"{self.id}:{arm.name}"

    def record(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("arms", "credits")}
        out["arms"] = [a.record() for a in self.arms]
        out["credits"] = self.credits.as_list()
        return out

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Experiment:
        rec = dict(rec)
        arms = [Arm.from_record(a) for a in rec.pop("arms")]
        credits = Moments(*rec.pop("credits", [0, 0.0, 0.0]))
        return cls(**rec, arms=arms, credits=credits)

    def view(self) -> dict[str, Any]:
        """The JSON of ``GET /experiments/{id}``."""
        arms = []
        for a in self.arms:
            v = a.verdict or {}
            arms.append(
                {
                    "name": a.name,
                    "version": self.champion_version if a.version is None else a.version,
                    "share": a.share,
                    "status": a.status,
                    "impressions": a.impressions,
                    "clicks": a.clicks,
                    "conversions": a.conversions,
                    "ctr": a.clicks / a.impressions if a.impressions else None,
                    "conversion_rate": a.conversions / a.impressions if a.impressions else None,
                    "users": a.users,
                    "requests": a.requests,
                    "errors": a.errors,
                    "p99_ms": a.p99_ms(),
                    "decision": v.get("decision"),
                    "p_value": v.get("p_value"),
                    "effect": v.get("effect"),
                    "ci": v.get("ci"),
                }
            )
        out = {
            "id": self.id,
            "name": self.name,
            "design": self.design,
            "status": self.status,
            "primary_metric": self.primary_metric,
            "alpha": self.alpha,
            "tau": self.tau,
            "auto": self.auto,
            "min_impressions": self.min_impressions,
            "max_seconds": self.max_seconds,
            "guardrails": dict(self.guardrails),
            "forced": self.forced,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
            "arms": arms,
            "verdict": {
                "decision": "continue",
                "p_value": 1.0,
                "effect": None,
                "ci": [None, None],
                "arm": None,
                **self.verdict,
                "looks": self.looks,
            },
        }
        if self.design == "interleaving":
            c = self.credits
            wins_b = int(round((c.sq + c.sum) / 2))
            out["credits"] = {
                "answers": c.n,
                "wins_champion": int(round(c.sq)) - wins_b,
                "wins_challenger": wins_b,
                "ties": c.n - int(round(c.sq)),
                "neutral_impressions": self.neutral_impressions,
            }
        return out


# ------------------------------------------------------------------ the book
class ExperimentBook:
    """``HOME/experiments.sqlite``: every experiment as one JSON record, and the users
    each arm has shown something to (so ``users`` survives restarts without keeping
    them in memory). One connection, WAL, guarded by a leaf lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS experiments (
                id TEXT PRIMARY KEY, created_at REAL NOT NULL, record TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS experiment_users (
                experiment TEXT NOT NULL, arm TEXT NOT NULL, user_id TEXT NOT NULL,
                PRIMARY KEY (experiment, arm, user_id)
            ) WITHOUT ROWID;
            """
        )
        self._conn = conn

    def load(self) -> list[dict[str, Any]]:
        with self._mutex:
            rows = self._conn.execute(
                "SELECT record FROM experiments ORDER BY created_at, id"
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def save(
        self, experiments: Sequence[Experiment], users: Sequence[tuple[str, str, str]] = ()
    ) -> dict[str, dict[str, int]]:
        """Store the records and the new (experiment, arm, user) rows in one
        transaction; returns each saved experiment's users per arm."""
        with self._mutex:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                if users:
                    conn.executemany(
                        "INSERT OR IGNORE INTO experiment_users VALUES (?, ?, ?)", users
                    )
                counts: dict[str, dict[str, int]] = {}
                for e in experiments:
                    got = conn.execute(
                        "SELECT arm, COUNT(*) FROM experiment_users WHERE experiment = ?"
                        " GROUP BY arm",
                        (e.id,),
                    ).fetchall()
                    counts[e.id] = {str(a): int(n) for a, n in got}
                    for a in e.arms:
                        a.users = counts[e.id].get(a.name, 0)
                    conn.execute(
                        "INSERT OR REPLACE INTO experiments VALUES (?, ?, ?)",
                        (e.id, e.created_at, json.dumps(e.record())),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return counts

    def close(self) -> None:
        with self._mutex:
            self._conn.close()


def guardrail_breach(rails: Mapping[str, float | None], champ: Arm, arm: Arm) -> str | None:
    """Which guardrail the challenger breaches, in words (``None``: none)."""
    if arm.requests >= GUARDRAIL_MIN_REQUESTS:
        limit = rails.get("max_error_rate")
        rate = arm.errors / arm.requests
        if limit is not None and rate > limit:
            return f"error rate {rate:.3f} over max_error_rate {limit:g}"
    ok = arm.requests - arm.errors >= GUARDRAIL_MIN_REQUESTS
    mine = arm.p99_ms()
    if ok and mine is not None:
        limit = rails.get("max_p99_ms")
        if limit is not None and mine > limit:
            return f"p99 latency {mine:.3g} ms over max_p99_ms {limit:g}"
        theirs = champ.p99_ms()
        ratio = rails.get("max_p99_ratio")
        if (
            ratio is not None
            and theirs is not None
            and champ.requests >= GUARDRAIL_MIN_REQUESTS
            and mine > ratio * theirs
        ):
            return (
                f"p99 latency {mine:.3g} ms over max_p99_ratio {ratio:g} x the champion's "
                f"{theirs:.3g} ms"
            )
    return None


def check_guardrails(given: Mapping[str, float | None] | None) -> dict[str, float | None]:
    out = dict(DEFAULT_GUARDRAILS)
    if given is None:
        return out
    if not isinstance(given, Mapping):
        raise ParameterError("guardrails", given, f"a dict with keys among {list(out)}")
    for key, value in given.items():
        if key not in out:
            raise ParameterError("guardrails", key, f"keys among {list(out)}")
        if value is not None:
            high = 1 if key == "max_error_rate" else math.inf
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"guardrails.{key}", value, "None or a number")
            if not (0 <= value <= high) or (key != "max_error_rate" and value <= 0):
                expected = "a number in [0, 1]" if high == 1 else "a positive number"
                raise ParameterError(f"guardrails.{key}", value, f"None or {expected}")
            value = float(value)
        out[key] = value
    return out


def make_arms(given: Sequence[Mapping[str, Any]], design: str) -> list[Arm]:
    """The arms, the champion first, with their traffic shares (see
    :meth:`RecommenderService.create_experiment`)."""
    if isinstance(given, (str, bytes, Mapping)) or not isinstance(given, Sequence) or not given:
        raise ParameterError("arms", given, "a non-empty list of arms")
    champion_share: Any = None
    challengers: list[tuple[str, str, Any]] = []  # name, version, share
    names: set[str] = set()
    for j, a in enumerate(given):
        if not isinstance(a, Mapping):
            raise ParameterError(f"arms.{j}", a, "an arm: {name, version, share}")
        version, share = a.get("version"), a.get("share")
        name = a.get("name", CHAMPION if version is None else f"challenger-{j}")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ParameterError(f"arms.{j}.name", name, "a name of 1-64 characters")
        if name in names:
            raise ParameterError(f"arms.{j}.name", name, "a name no other arm has")
        names.add(name)
        if (name == CHAMPION) != (version is None):
            raise ParameterError(
                f"arms.{j}",
                dict(a),
                f"the champion arm named {CHAMPION!r} without a version, or a challenger "
                "with a registry version",
            )
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1
        ):
            raise ParameterError(f"arms.{j}.share", share, "a traffic share in (0, 1)")
        if version is None:
            champion_share = share
        else:
            challengers.append((name, str(version), share))
    versions = [v for _, v, _ in challengers]
    if not challengers:
        raise ParameterError("arms", list(given), "at least one challenger (an arm with a version)")
    if len(set(versions)) < len(versions):
        raise ParameterError("arms", versions, "each challenger a different version")
    shares = [s for _, _, s in challengers]
    if design == "interleaving":
        if len(challengers) != 1:
            raise ParameterError(
                "arms", versions, "exactly one challenger under interleaving (one merged list)"
            )
        if champion_share is not None or shares[0] is not None:
            raise ParameterError(
                "arms.share",
                [champion_share, *shares],
                "no traffic shares under interleaving (every answer holds both rankers)",
            )
        return [Arm(CHAMPION, None, None), Arm(challengers[0][0], versions[0], None)]
    if champion_share is None and all(s is None for s in shares):  # an even split
        shares = [1.0 / (len(challengers) + 1)] * len(challengers)
    elif any(s is None for s in shares):
        raise ParameterError(
            "arms.share", shares, "a share for every challenger (or for no arm: an even split)"
        )
    if champion_share is None:
        champion_share = 1.0 - sum(shares)
    total = sum(shares) + champion_share
    if champion_share <= 0 or abs(total - 1.0) > 1e-6:
        raise ParameterError(
            "arms.share",
            [champion_share, *shares],
            f"traffic shares (the champion's included) that sum to 1; they sum to {total:g}",
        )
    return [Arm(CHAMPION, None, float(champion_share))] + [
        Arm(name, version, float(s))
        for (name, version, _), s in zip(challengers, shares, strict=True)
    ]
