"""Online experiments in the closed-loop world: two rankers face the same simulated
users, as an A/B split or team-draft interleaved, until the sequential test decides.

:func:`run_experiment` is what measures the experiment machinery itself: how often an
A/A experiment (the same ranker twice) ends in a false "difference" although the test
is looked at after every answer, and how many impressions each design needs to tell a
better ranker from a worse one. The rankers answer the users of one
simulated hour together (a batch), from their state at the hour's start.

The unit of observation is one answer (one request): under A/B, its clicks (0..k) in
the arm the user is assigned to (sticky, by a hash of the user and the experiment's
seed); under interleaving, its credit (+1 challenger, -1 champion, 0 tie, see
:func:`~lifelongrec.evaluation.interleaving_credit`). Both rankers keep every user's
state (they observe every event, as a service serving both would). The test
(:func:`~lifelongrec.evaluation.msprt`, :func:`~lifelongrec.evaluation.msprt_mean`)
looks after every answer, with the variance estimated from the answers so far
(pooled over the arms under A/B, as the null says they are alike).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import numpy as np

from lifelongrec._errors import ParameterError
from lifelongrec.evaluation._experiments import (
    MSPRT_TAU,
    SequentialVerdict,
    interleaving_credit,
    msprt,
    msprt_mean,
    team_draft,
)
from lifelongrec.evaluation._simulate import ClosedLoopWorld, SimulationSettings, _frame, _rng
from lifelongrec.models import Recommender

__all__ = ["EXPERIMENT_DESIGNS", "Moments", "assign_arm", "run_experiment", "sequential_look"]

EXPERIMENT_DESIGNS = ("ab", "interleave")
_COIN = 4  # the purpose of the interleaving coins' generators


def assign_arm(user_id: str, salt: str, share_b: float = 0.5) -> str:
    """``"b"`` for a ``share_b`` of users, else ``"a"``: sticky (a hash of the user and
    ``salt``), independent between experiments with different salts.

    >>> assign_arm("u1", "exp-1") == assign_arm("u1", "exp-1")
    True
    """
    digest = hashlib.blake2b(f"{salt}\x00{user_id}".encode(), digest_size=8).digest()
    return "b" if int.from_bytes(digest, "big") / 2**64 < share_b else "a"


class Moments:
    """Count, sum and sum of squares of a stream of numbers. An observation may be
    revised later (:meth:`revise`): a live experiment counts an answer when it is shown
    and its clicks when they arrive.

    >>> m = Moments()
    >>> m.add(0.0); m.add(1.0); m.revise(0.0, 0.5)
    >>> m.n, m.mean
    (2, 0.75)
    """

    def __init__(self, n: int = 0, sum: float = 0.0, sq: float = 0.0) -> None:  # noqa: A002
        self.n, self.sum, self.sq = int(n), float(sum), float(sq)

    def add(self, x: float) -> None:
        self.n += 1
        self.sum += x
        self.sq += x * x

    def revise(self, old: float, new: float) -> None:
        """One observation counted as ``old`` is ``new`` now."""
        self.sum += new - old
        self.sq += new * new - old * old

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    def as_list(self) -> list[float]:
        """``[n, sum, sq]`` (JSON; ``Moments(*values)`` reads it back)."""
        return [self.n, self.sum, self.sq]


def run_experiment(
    model_a: Recommender,
    model_b: Recommender,
    settings: SimulationSettings,
    design: str = "ab",
    *,
    salt: str = "experiment",
    alpha: float = 0.05,
    tau: float | None = None,
    neutral: bool = True,
) -> dict[str, Any]:
    """Run ``model_a`` (champion) against ``model_b`` (challenger) in the world of
    ``settings`` for at most ``settings.days`` days, looking after every answer; stop at
    the first rejection. Neither model learns (copies observe the events).

    ``tau``: the mixture's scale; ``None``: 0.01 for A/B on clicks per answer times
    ``k`` (a tenth of a click per ten-item answer), 0.05 for interleaving credits.
    ``neutral``: interleaving credits neither ranker for an item both proposed in the
    same round (:func:`~lifelongrec.evaluation.team_draft`); ``False``: the original
    team draft.

    Returns ``design``, ``decision`` (``"a"`` or ``"b"``: the better one; ``None``: no
    decision), ``requests``, ``impressions`` (items shown), ``p_value``, ``effect``
    (challenger minus champion: clicks per answer, or mean credit), ``looks``, ``day``
    (of the decision or the last), the arms' ``requests_a`` / ``requests_b`` and mean
    clicks per answer (A/B) or ``wins_a`` / ``wins_b`` / ``ties`` (interleaving).
    """
    if design not in EXPERIMENT_DESIGNS:
        raise ParameterError("design", design, f"one of {list(EXPERIMENT_DESIGNS)}")
    s = settings
    world = ClosedLoopWorld(s)
    a, b = copy.deepcopy(model_a), copy.deepcopy(model_b)
    if tau is None:
        tau = MSPRT_TAU * s.k if design == "ab" else 5 * MSPRT_TAU
    arms = {"a": Moments(), "b": Moments()}
    credits = Moments()
    p, looks, verdict, impressions, day = 1.0, 0, None, 0, 0
    shown: dict = {}
    bought: set = set()
    for day in range(s.days):
        new = np.flatnonzero(world.item_day == day)
        if len(new) and day > 0:
            for m in (a, b):
                m.add_items(world.catalogue(new))
        for start, batch, browsed in world.hours(day):
            own = [e for x in browsed for e in x]
            if own:
                for m in (a, b):
                    m.observe(_frame(own))
            users = [str(world.user_ids[u]) for _, u in batch]
            reactions: list[tuple] = []
            if design == "ab":
                side = [assign_arm(u, salt) for u in users]
                lists: list[list[str]] = [[] for _ in batch]
                for arm, model in (("a", a), ("b", b)):
                    rows = [j for j, x in enumerate(side) if x == arm]
                    if rows:
                        ids, _ = model.recommend([users[j] for j in rows], k=s.k)
                        for j, r in zip(rows, np.atleast_2d(ids), strict=True):
                            lists[j] = [str(i) for i in r if i is not None]
            else:
                ids_a, _ = a.recommend(users, k=s.k)
                ids_b, _ = b.recommend(users, k=s.k)
                lists, teams = [], []
                for j, (_t, u) in enumerate(batch):
                    ra = [str(i) for i in np.atleast_2d(ids_a)[j] if i is not None]
                    rb = [str(i) for i in np.atleast_2d(ids_b)[j] if i is not None]
                    coin = _rng(s.seed, _COIN, day + s.history_days, u, start + j)
                    merged, team = team_draft(ra, rb, s.k, coin, neutral=neutral)
                    lists.append(merged)
                    teams.append(team)
            for j, ((t, u), own_j) in enumerate(zip(batch, browsed, strict=True)):
                t0 = (own_j[-1][2] + 30) if own_j else t
                got = world.react(u, lists[j], day, t0, start + j, shown, bought)
                clicked = {e[1] for e in got if e[3] == "click"}
                impressions += len(lists[j])
                if design == "ab":
                    arms[side[j]].add(float(len(clicked)))
                else:
                    flags = [i in clicked for i in lists[j]]
                    credits.add(float(interleaving_credit(teams[j], flags)))
                reactions += got
                looks += 1  # a look after every answer
                verdict = sequential_look(design, arms, credits, tau, alpha, p)
                p = verdict.p_value
                if verdict.reject:
                    break
            if verdict is not None and verdict.reject:
                break
            if reactions:
                for m in (a, b):
                    m.observe(_frame(reactions))
        if verdict is not None and verdict.reject:
            break
    out: dict[str, Any] = {
        "design": design,
        "decision": None,
        "requests": arms["a"].n + arms["b"].n if design == "ab" else credits.n,
        "impressions": impressions,
        "p_value": p,
        "effect": None if verdict is None else verdict.effect,
        "looks": looks,
        "day": day,
    }
    if verdict is not None and verdict.reject:
        out["decision"] = "b" if verdict.effect > 0 else "a"
    if design == "ab":
        for arm in ("a", "b"):
            out[f"requests_{arm}"] = arms[arm].n
            out[f"clicks_per_request_{arm}"] = arms[arm].mean
    else:
        wins_b = int(round((credits.sq + credits.sum) / 2))
        out |= {"wins_a": int(credits.sq) - wins_b, "wins_b": wins_b}
        out["ties"] = credits.n - int(credits.sq)
    return out


def sequential_look(
    design: str,
    arms: dict[str, Moments],
    credits: Moments | None,
    tau: float,
    alpha: float,
    p: float,
) -> SequentialVerdict:
    """One look at an experiment: under A/B (``design="ab"``) the mSPRT of arm ``"b"``'s
    mean outcome per answer minus arm ``"a"``'s, with the variance estimated from the
    answers so far, pooled over the arms (as the null says they are alike); under
    interleaving the one-sample mSPRT of the ``credits`` (+1 / -1 / 0 per answer), whose
    variance under the null is their mean square. ``p``: the p-value of the last look.
    The service's live experiments look with the same function."""
    if design == "ab":
        A, B = arms["a"], arms["b"]
        n = A.n + B.n
        if A.n == 0 or B.n == 0:
            return msprt(0.0, A.n, 0.0, B.n, tau=tau, alpha=alpha, previous_p=p)
        mean = (A.sum + B.sum) / n
        variance = max((A.sq + B.sq) / n - mean * mean, 0.0)
        return msprt(
            A.mean, A.n, B.mean, B.n, variance=variance, tau=tau, alpha=alpha, previous_p=p
        )
    if credits is None:
        raise ParameterError("credits", None, "the interleaving credits (a Moments)")
    variance = credits.sq / credits.n if credits.n else 0.0  # E[x^2]: the null's variance
    return msprt_mean(credits.mean, credits.n, variance, tau=tau, alpha=alpha, previous_p=p)
