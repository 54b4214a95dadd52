"""Issue 17: online experiments measured in the closed-loop world.

1. **A/A**: ``--aa`` experiments (default 200) per design, each on a world of its own
   seed with two rankers of equal quality as champion and challenger (``--aa-ranker``,
   default ``als~shuffle``: ALS fit on that world's history, each list's ten items in an
   order of its own per answer and arm), the sequential test looked at after every
   answer until the world's days run out. The false-positive rate with its 95 %
   Clopper-Pearson interval (nominal: 5 %). (One ranker twice, e.g. ``--aa-ranker
   als``, gives interleaving nothing to credit: both propose every item.)
2. **A worse and a better challenger**: ``--pairs`` experiments (default 50) per design
   with the weaker ranker of ``--pair`` (default ``als:popularity``: ALS and popularity)
   as the challenger of the stronger (it must be stopped: decision "a") and the stronger
   as the challenger of the weaker (it must win: decision "b"); how often each design
   decided right, the impressions it needed (median, quartiles over the runs that
   decided right), and, at equal power, the impressions by which half of all runs had
   decided right (a run that decided wrong or not at all counts as never): A/B's over
   interleaving's is the efficiency figure. ``WEAK`` may be a ranker with controlled
   damage (:class:`Damaged`): ``NAME~bottomN``, the ``N`` items the ranker ranks lowest,
   then its own first ``k - N`` (a pair of known order whose lists differ in ``N``
   items, as a small change to a ranker does;
   ``--aa 0 --pair als:als~bottom1 --world days=16 --block bottom1``); ``NAME~rev``,
   every list reversed; ``NAME~SHARE``, that share of every list replaced by random
   items; ``NAME~offsetN``, the ranker's next page (its items ranked ``N + 1`` to
   ``N + k``). ``--no-neutral`` interleaves by the original team draft.

Writes the ``experiments-<block>`` block of docs/benchmarks.md and its raw JSON.

    .venv/bin/python benchmarks/experiments.py
    .venv/bin/python benchmarks/experiments.py --aa 0 --pair als:als~bottom1 --world days=16 \\
        --block bottom1
    # smoke test (seconds):
    .venv/bin/python benchmarks/experiments.py --aa 2 --pairs 1 --world days=2 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
import numpy as np
from _common import command_line, md_table
from scipy import stats

from lifelongrec.evaluation import (
    ClosedLoopWorld,
    SimulationSettings,
    parse_params,
    run_experiment,
)
from lifelongrec.models import get_model

WORLD = dict(
    n_users=800,
    n_items=300,
    n_categories=10,
    days=4,
    history_days=7,
    shift_day=None,
    new_items_per_day=0,
)
DESIGNS = ("ab", "interleave")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval of ``k`` successes in ``n``."""
    a = (1 - level) / 2
    low = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def power_point(runs: list[dict], want: str, power: float) -> float | None:
    """The impressions by which a share ``power`` of ``runs`` had decided ``want``
    (runs that decided otherwise or not at all never did); ``None`` when fewer did."""
    at = sorted(x["impressions"] for x in runs if x["decision"] == want)
    need = int(np.ceil(power * len(runs)))
    return float(at[need - 1]) if need and len(at) >= need else None


def power_floor(runs: list[dict], want: str, power: float) -> float | None:
    """When fewer than a share ``power`` of ``runs`` decided ``want`` within the
    world's horizon: a number of impressions that the equal-power point is known to
    exceed (the fewest impressions a run still undecided at its horizon had seen: until
    then none of them had decided, so fewer than ``power`` had); ``inf`` when too few
    runs are left undecided to ever get there; ``None`` when the point was reached."""
    if power_point(runs, want, power) is not None:
        return None
    need = int(np.ceil(power * len(runs)))
    right = sum(x["decision"] == want for x in runs)
    open_ = [x["impressions"] for x in runs if x["decision"] is None]
    return float(min(open_)) if right + len(open_) >= need and open_ else float("inf")


def power_ratio(ab: float | None, il: float | None, ab_floor: float | None = None) -> str:
    """A/B's impressions over interleaving's at equal power, as text; ``ab_floor``
    (:func:`power_floor`) bounds the ratio when A/B did not reach the point."""
    if ab is not None and il is not None:
        return f"{ab / il:.2f}x"
    if il is not None and ab_floor is not None and np.isfinite(ab_floor):
        return (
            f"more than {ab_floor / il:.1f}x (A/B: fewer than half had decided right by "
            f"{ab_floor:,.0f} impressions; interleaving: half by {il:,.0f})"
        )
    if il is not None:
        return f"more than the world's horizon allowed for A/B (interleaving: {il:,.0f})"
    return "not reached by interleaving within the world's horizon"


class Damaged:
    """A fitted ranker with controlled damage. ``share`` a number: in each list it
    answers, every position is replaced, with probability ``share``, by an item drawn
    uniformly from ``pool`` (the world's items at day 0) that the list does not hold;
    ``share="rev"``: the same items in reverse order (the best last);
    ``share="offsetN"``: the ranker's items ranked ``N + 1`` to ``N + k`` (its next page);
    ``share="bottomN"``: the ``N`` items it ranks lowest (the lowest first), then its
    own first ``k - N``; ``share="shuffle"``: its own items, in a random order per
    answer.

    ``bottomN`` is worse in every world and at every horizon: it shows the ranker's own
    items (the same items, repeated as often, tiring users as much) ``N`` places lower
    each, below ``N`` items the ranker thinks the user cares least for, and leaves its
    last ``N`` out.
    Reversing is worse too, but shows the same items (only their positions differ).
    Random replacements are worse at first but show more items the users have not
    tired of, and over weeks of the simulated world they can win: not a pair whose
    order is known. The next page shows other items than the ranker's first page, each
    a little less liked by the same model; in this world that difference is too small
    to decide within weeks."""

    def __init__(self, model, share: float | str, pool: np.ndarray, seed: int) -> None:
        self.model, self.pool = model, pool
        self.offset = int(share[6:]) if str(share).startswith("offset") else None
        self.bottom = int(share[6:]) if str(share).startswith("bottom") else None
        named = share in ("rev", "shuffle") or self.offset is not None or self.bottom is not None
        self.share = share if named else float(share)
        self.rng = np.random.default_rng(seed)

    def observe(self, events) -> None:
        self.model.observe(events)

    def add_items(self, items) -> None:
        self.model.add_items(items)

    def recommend(self, users, k: int = 10):
        if self.bottom is not None:
            ids, scores = self.model.recommend(users, k=len(self.pool))
            ids = np.array(np.atleast_2d(ids), dtype=object)
            out = np.full((len(ids), k), None, dtype=object)
            for row, got in zip(out, ids, strict=True):
                ranked = [i for i in got if i is not None]
                worst = ranked[::-1][: self.bottom]
                mine = worst + [i for i in ranked[:k] if i not in worst]
                row[: len(mine[:k])] = mine[:k]
            return out, np.zeros(out.shape)
        if self.offset is not None:
            ids, scores = self.model.recommend(users, k=k + self.offset)
            ids = np.array(np.atleast_2d(ids), dtype=object)[:, self.offset :]
            return ids.copy(), np.atleast_2d(scores)[:, self.offset :].copy()
        ids, scores = self.model.recommend(users, k=k)
        ids = np.array(np.atleast_2d(ids), dtype=object)
        if self.share == "rev":
            return ids[:, ::-1].copy(), scores
        if self.share == "shuffle":  # the items in an order of its own (padding last)
            for row in ids:
                held = [j for j, i in enumerate(row) if i is not None]
                row[held] = row[self.rng.permutation(held)]
            return ids, scores
        for row in ids:
            held = set(row.tolist())
            for j in np.flatnonzero(self.rng.random(len(row)) < self.share):
                pick = self.pool[self.rng.integers(len(self.pool))]
                while pick in held:
                    pick = self.pool[self.rng.integers(len(self.pool))]
                held.add(pick)
                row[j] = pick
        return ids, scores


def rankers(settings: SimulationSettings, names: tuple[str, ...]) -> dict:
    """Each name fitted on the world's history; ``NAME~SHARE``: :class:`Damaged` around
    a fit of ``NAME``."""
    world = ClosedLoopWorld(settings)
    history = world.history()
    fitted: dict = {}
    out = {}
    for n in names:
        base, _, share = n.partition("~")
        if base not in fitted:
            fitted[base] = get_model(base).fit(history)
        pool = world.item_ids[: settings.n_items]
        out[n] = Damaged(fitted[base], share, pool, settings.seed) if share else fitted[base]
    return out


def aa_pair(settings: SimulationSettings, name: str) -> tuple:
    """Two rankers of equal quality for an A/A experiment: ``name`` twice; a
    :class:`Damaged` one with its own random draws each (e.g. ``als~shuffle``: the same
    ten items, in an order of their own per answer and arm)."""
    one = rankers(settings, (name,))[name]
    if not isinstance(one, Damaged):
        return one, one
    return one, Damaged(one.model, one.share, one.pool, settings.seed + 1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--aa", type=int, default=200, help="A/A experiments per design")
    ap.add_argument(
        "--aa-ranker",
        default="als~shuffle",
        help="the A/A's ranker (twice; with damage, independent draws per arm)",
    )
    ap.add_argument("--pairs", type=int, default=50, help="experiments per design and pair")
    ap.add_argument("--world", action="append", default=[], metavar="K=V")
    ap.add_argument(
        "--pair",
        default="als:popularity",
        metavar="STRONG:WEAK",
        help="the two rankers of the worse/better experiments, the stronger first",
    )
    ap.add_argument(
        "--no-neutral",
        action="store_true",
        help="interleave by the original team draft (shared items credited to a team)",
    )
    ap.add_argument("--block", default="default")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    world = {**WORLD, **parse_params(args.world)}
    neutral = not args.no_neutral
    strong, _, weak = args.pair.partition(":")
    if not strong or not weak:
        ap.error(f"--pair {args.pair!r}: expected STRONG:WEAK, e.g. als:popularity")
    cases = {"worse": f"{weak} vs {strong}", "better": f"{strong} vs {weak}"}
    t0 = time.perf_counter()
    aa: dict[str, list[dict]] = {d: [] for d in DESIGNS}
    for r in range(args.aa):
        s = SimulationSettings(**{**world, "seed": 1_000 + r})
        one, two = aa_pair(s, args.aa_ranker)
        for d in DESIGNS:
            aa[d].append(run_experiment(one, two, s, d, salt=f"aa-{r}", neutral=neutral))
        if (r + 1) % 20 == 0:
            print(f"A/A {r + 1}/{args.aa}", flush=True)
    pairs: dict[str, dict[str, list[dict]]] = {d: {"worse": [], "better": []} for d in DESIGNS}
    for r in range(args.pairs):
        s = SimulationSettings(**{**world, "seed": 5_000 + r})
        m = rankers(s, (strong, weak))
        for d in DESIGNS:
            pairs[d]["worse"].append(
                run_experiment(m[strong], m[weak], s, d, salt=f"p-{r}", neutral=neutral)
            )
            pairs[d]["better"].append(
                run_experiment(m[weak], m[strong], s, d, salt=f"p-{r}", neutral=neutral)
            )
        if (r + 1) % 10 == 0:
            print(f"pairs {r + 1}/{args.pairs}", flush=True)
    wall = time.perf_counter() - t0
    aa_rows, pair_rows = [], []
    for d in DESIGNS:
        k = sum(x["decision"] is not None for x in aa[d])
        low, high = clopper_pearson(k, len(aa[d])) if aa[d] else (None, None)
        aa_rows.append(
            {
                "design": d,
                "n": len(aa[d]),
                "fp": k,
                "rate": k / len(aa[d]) if aa[d] else None,
                "low": low,
                "high": high,
                "impressions": float(np.median([x["impressions"] for x in aa[d]]))
                if aa[d]
                else None,
            }
        )
        for case, want in (("worse", "a"), ("better", "b")):
            runs = pairs[d][case]
            right = [x for x in runs if x["decision"] == want]
            imps = [x["impressions"] for x in right]
            q = [float(v) for v in np.percentile(imps, [25, 50, 75])] if imps else [None] * 3
            pair_rows.append(
                {
                    "design": d,
                    "case": cases[case],
                    "n": len(runs),
                    "right": len(right),
                    "wrong": sum(x["decision"] not in (None, want) for x in runs),
                    "q1": q[0],
                    "median": q[1],
                    "q3": q[2],
                    "power50": power_point(runs, want, 0.5),
                    "floor50": power_floor(runs, want, 0.5),
                }
            )
    ratios, equal_power = [], []
    for case in cases.values():
        ab = next(r for r in pair_rows if r["design"] == "ab" and r["case"] == case)
        il = next(r for r in pair_rows if r["design"] == "interleave" and r["case"] == case)
        if ab["median"] and il["median"]:
            ratios.append(f"{case}: {ab['median'] / il['median']:.2f}x")
        equal_power.append(f"{case}: {power_ratio(ab['power50'], il['power50'], ab['floor50'])}")
    for row in aa_rows:
        print(row)
    for row in pair_rows:
        print(row)
    print("A/B median impressions / interleaving's:", "; ".join(ratios))
    print("at equal power (half decided right), A/B / interleaving:", "; ".join(equal_power))
    if args.no_write:
        return 0
    body = [
        f"{wall / 60:.1f} min wall. World (`SimulationSettings`, a seed per experiment): "
        f"{world}. The test: mSPRT, alpha 0.05, looked at after every answer (A/B: clicks "
        "per answer, tau 0.1; interleaving: credit per answer, tau 0.05). Interleaving: "
        + (
            "team draft with neutral items (an item both rankers propose in the same "
            "round credits neither)."
            if neutral
            else "the original team draft (`--no-neutral`: a shared item is credited "
            "to the team that took it)."
        ),
        "",
        f"A/A (`{args.aa_ranker}` as champion and challenger"
        + (", each with draws of its own" if "~" in args.aa_ranker else "")
        + ", run to the end of the world's days):",
        "",
        md_table(
            aa_rows,
            [
                ("design", "design", 0),
                ("n", "experiments", 0),
                ("fp", "false positives", 0),
                ("rate", "rate", 3),
                ("low", "95 % CI low", 3),
                ("high", "95 % CI high", 3),
                ("impressions", "median impressions per run", 0),
            ],
        ),
        "",
        "A worse and a better challenger (impressions until the test decided, over the "
        "experiments that decided right):",
        "",
        md_table(
            pair_rows,
            [
                ("design", "design", 0),
                ("case", "challenger vs champion", 0),
                ("n", "experiments", 0),
                ("right", "decided right", 0),
                ("wrong", "decided wrong", 0),
                ("q1", "impressions q1", 0),
                ("median", "median", 0),
                ("q3", "q3", 0),
                ("power50", "half decided right by", 0),
            ],
        ),
        "",
        "A/B's median impressions over interleaving's (runs that decided right): "
        + "; ".join(ratios)
        + ".",
        "",
        "At equal power (impressions by which half of all runs had decided right; "
        "a run that never did counts as never), A/B's over interleaving's: "
        + "; ".join(equal_power)
        + ".",
    ]
    raw = {
        "world": world,
        "neutral": neutral,
        "aa_ranker": args.aa_ranker,
        "aa": aa,
        "pairs": pairs,
    }
    _common.write_block(
        args.block,
        "Online experiments in the closed-loop world: A/A and design efficiency",
        command_line("experiments.py", argv),
        body,
        raw,
        prefix="experiments",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
