"""The torch modules: item tower, user encoder (a causal transformer) and the whole
sequential module with its heads, each built from a typed config.

Shapes: ``B`` users, ``L`` events per user (``max_len``), ``D`` the width, ``N`` items,
``F`` content features. Item rows are shifted by one (``0`` padding); :data:`OOV_ROW`
(``-1``) is an event whose item has no row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lifelongrec.models.heads import HeadsConfig, MultiTaskHeads
from lifelongrec.models.sequential._events import TYPE_PAD
from lifelongrec.nn import GAP_PAD, ts_hours

__all__ = [
    "AGE_BUCKETS",
    "NEVER",
    "RELEASE_BUCKETS",
    "EncoderConfig",
    "HSTUBlock",
    "ItemTower",
    "ItemTowerConfig",
    "SequentialModule",
    "UserEncoder",
    "encode_users",
    "padded_content",
    "relative_time_buckets",
]

#: ``first_ts`` of an item row without an event yet.
NEVER = torch.iinfo(torch.int64).max
#: Known-age buckets of the item-age bias: ``floor(log2(1 + age in hours))``, the last
#: one open-ended (2^19 hours is 60 years); the bias table's row 0 is "no event yet".
AGE_BUCKETS = 20
#: Release-age buckets: ``floor(log2(1 + UTC days since release))``, the last open-ended
#: (2^15 days is 90 years); the release bias table's row 0 is "release unknown" and row
#: 1 "not released yet" (released after the prediction's time).
RELEASE_BUCKETS = 16
_DAY = 86_400


# ===================================================================== configs
@dataclass(frozen=True)
class ItemTowerConfig:
    """``n_items`` id rows (plus padding row 0), width ``dim``, ``content_dim`` features;
    ``oov``: a learned vector for events of items without a row (:data:`OOV_ROW`);
    ``item_age``: the item-age bias, with items counted as new for ``new_for`` seconds
    after their first event; ``release_age``: the release-age bias."""

    n_items: int
    dim: int
    content_dim: int = 0
    content_gate: bool = False
    id_dropout: float = 0.0
    oov: bool = False
    item_age: bool = False
    new_for: int = 0
    release_age: bool = False


@dataclass(frozen=True)
class EncoderConfig:
    """The causal transformer over ``max_len`` events; ``kind``: its blocks,
    ``"sasrec"`` (:class:`TransformerBlock`) or ``"hstu"`` (:class:`HSTUBlock`)."""

    dim: int
    n_layers: int
    n_heads: int
    dropout: float
    max_len: int
    n_type_ids: int
    n_time_buckets: int
    ffn_mult: int = 1
    kind: str = "sasrec"


# ===================================================================== modules
def _centred_log_rates(hits: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``log`` of targets per candidate in each bucket (float64 counts), smoothed
    towards the overall rate and centred on the candidates' mean (a typical item at 0)."""
    hits, candidates = hits.cpu(), candidates.cpu()
    rate = hits.sum() / candidates.sum().clamp_min(1.0)
    log_rate = torch.log((hits + rate) / (candidates + 1.0))
    return log_rate - (log_rate * candidates).sum() / candidates.sum().clamp_min(1.0)


def _lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a small 1-D ``table`` and a large ``index`` (a bias per
    target and item): by ``gather``, whose backward sums the gradient with
    ``scatter_add``; indexing's accumulating ``index_put`` backward is much slower on
    CPU at that size."""
    return table.gather(0, index.reshape(-1)).view(index.shape)


class ItemTower(nn.Module):
    """``v(i) = E_id[i] + gate * W x(i)``; rows are shifted item rows (0 = padding -> 0).

    ``content`` ``(N + 1, F)`` is a fixed buffer (not trained); its row 0 is zero. During
    training, ``id_dropout`` zeroes an item's id embedding with that probability so the
    content projection learns to stand alone (cold items have only content). With
    ``config.oov``, the row :data:`OOV_ROW` (``-1``) reads the learned vector ``oov``
    ``(D,)`` (zero at first): the stand-in of items that have no row (without it, such
    rows read zero).

    With ``config.item_age``, ``first_ts`` ``(N + 1,)`` holds each row's first event
    time (int64 epoch seconds; :data:`NEVER`: none yet) and ``age_bias``
    ``(AGE_BUCKETS + 1,)`` the learned bias of each age bucket (row 0: no event yet),
    read by :meth:`age_scores`; both are ``None`` when off.

    With ``config.release_age``, ``release_ts`` ``(N + 1,)`` holds each row's release
    time (int64 epoch seconds; :data:`NEVER`: unknown) and ``release_bias``
    ``(RELEASE_BUCKETS + 2,)`` the learned bias by time since release, added by
    :meth:`age_scores` too; ``None`` when off. Unlike the first event, a release date
    is known before an item's first event, so it ranks cold items among themselves.
    """

    def __init__(self, config: ItemTowerConfig, content: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        D = config.dim
        self.id_emb = nn.Embedding(config.n_items + 1, D, padding_idx=0)
        nn.init.normal_(self.id_emb.weight, std=D**-0.5)
        with torch.no_grad():
            self.id_emb.weight[0].zero_()
        if config.content_dim > 0:
            if content is None:
                content = torch.zeros(config.n_items + 1, config.content_dim)
            self.register_buffer("content", content.float())
            self.proj = nn.Linear(config.content_dim, D, bias=False)
            self.gate = nn.Parameter(torch.ones(D)) if config.content_gate else None
        else:
            self.content = None
            self.proj = None
            self.gate = None
        # zeros: no draw from the random stream, so seeded models without it are unchanged
        self.oov = nn.Parameter(torch.zeros(D)) if config.oov else None
        for on, times, bias, size in (
            (config.item_age, "first_ts", "age_bias", AGE_BUCKETS + 1),
            (config.release_age, "release_ts", "release_bias", RELEASE_BUCKETS + 2),
        ):
            if on:  # per-row times (NEVER: none) and the learned bias per bucket
                self.register_buffer(times, torch.full((config.n_items + 1,), NEVER))
                setattr(self, bias, nn.Parameter(torch.zeros(size)))
            else:
                setattr(self, times, None)
                setattr(self, bias, None)
        self._first_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._new_days: dict[int, torch.Tensor] = {}  # per-day counts (:meth:`new_norm`)
        self._new_key: tuple[int, ...] | None = None
        self.times_version = 0  # bumped whenever first_ts or release_ts changes

    @property
    def has_age(self) -> bool:
        """Whether :meth:`age_scores` adds anything (item age or release age)."""
        return self.age_bias is not None or self.release_bias is not None

    @property
    def age_version(self) -> tuple[int, ...]:
        """Changes whenever :meth:`age_scores` may: the biases trained in place (their
        version counters) or first events or release times set."""
        biases = (b for b in (self.age_bias, self.release_bias) if b is not None)
        return (self.times_version, self.n_items, *(b._version for b in biases))

    # ------------------------------------------------------------ item age
    @torch.no_grad()
    def seen(self, rows: torch.Tensor, ts: torch.Tensor) -> None:
        """Events at epoch seconds ``ts`` (int64) on shifted ``rows``: each row's first
        event time becomes the earliest it has seen (padding and OOV rows ignored)."""
        if self.first_ts is None:
            return
        ok = rows > 0
        if not bool(ok.any()):
            return
        dev = self.first_ts.device
        self.first_ts.scatter_reduce_(0, rows[ok].to(dev), ts[ok].to(dev, torch.int64), "amin")
        self._first_changed()

    @torch.no_grad()
    def set_release(self, rows: torch.Tensor, ts: torch.Tensor) -> None:
        """Release times (int64 epoch seconds, :data:`NEVER`: unknown) of the shifted
        ``rows`` (no-op without release age)."""
        if self.release_ts is None or len(rows) == 0:
            return
        dev = self.release_ts.device
        self.release_ts[rows.to(dev)] = ts.to(dev, torch.int64)
        self.times_version += 1

    def _first_changed(self) -> None:
        self._first_cache = None
        self.times_version += 1

    def _first(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``first_ts`` as float32 hours (``inf``: none yet) and its sorted rows 1..N."""
        if self._first_cache is None:
            never = self.first_ts == NEVER
            hours = ts_hours(self.first_ts).masked_fill(never, float("inf"))
            self._first_cache = (hours, torch.sort(self.first_ts[1:]).values)
        return self._first_cache

    def count_new(self, ts: torch.Tensor) -> torch.Tensor:
        """How many item rows had no event before each time ``ts`` (int64 epoch
        seconds, any shape): first event at or after it, or none yet; float32 (zeros
        without item age)."""
        if self.first_ts is None:
            return torch.zeros(ts.shape, device=ts.device)
        before = torch.searchsorted(self._first()[1], (ts - self.config.new_for).contiguous())
        return (self.n_items - before).to(torch.float32)

    def new_norm(self, ts: torch.Tensor, live: torch.Tensor | None = None) -> torch.Tensor:
        """The log-normaliser by which the items new at each time ``ts`` (int64 epoch
        seconds) share the new items' mass ``age_bias[0]`` in :meth:`age_scores`:
        ``log`` of how many there are (:meth:`count_new`, at least 1), or with release
        age the log-sum-exp of their release biases, so the mass goes to the new items
        in proportion to ``exp`` of their bias by time since release (items not
        released yet get next to none) instead of evenly. Zeros without item age.

        ``live`` ``(N,)`` (bool, rows 1..N), for ``ts`` ``(Q, 1)``: only those rows
        count, decided to the second (serving). Without it (training, validation) a
        time with release age counts the items without an event before its UTC day's
        first second (less ``new_for``), so a day's counts are computed once per
        :attr:`times_version`; an item first seen earlier that day counts too."""
        if self.first_ts is None:
            return torch.zeros(ts.shape, device=ts.device)
        if live is not None:
            new = ~self.is_known(ts, None) & live.to(ts.device)[None, :]
            if self.release_bias is None:
                return torch.log(new.sum(dim=1, keepdim=True).clamp_min(1).float())
            part = self._release_part(ts, None).masked_fill(~new, float("-inf"))
            norm = torch.logsumexp(part, dim=1, keepdim=True)
            return torch.where(new.any(dim=1, keepdim=True), norm, 0.0)
        if self.release_bias is None:
            return torch.log(self.count_new(ts).clamp_min(1.0))
        day = torch.div(ts, _DAY, rounding_mode="floor")
        days, inverse = torch.unique(day, return_inverse=True)
        counts = self._new_by_release(days)  # (U, K)
        empty = counts.sum(dim=1) == 0
        counts[empty, 0] = 1.0  # a finite stand-in (and gradient), replaced by 0 below
        norm = torch.logsumexp(self.release_bias + counts.log(), dim=1)
        return torch.where(empty, 0.0, norm)[inverse]

    @torch.no_grad()
    def _new_by_release(self, days: torch.Tensor, chunk: int = 2**22) -> torch.Tensor:
        """``(U, RELEASE_BUCKETS + 2)`` float32: for each UTC day of ``days`` (int64),
        how many item rows in each release bucket had no event before its first second
        (less ``new_for``); cached per day until the times change."""
        key = (self.times_version, self.n_items, self.first_ts._version, self.release_ts._version)
        if self._new_key != key:
            self._new_days, self._new_key = {}, key
        cache, K = self._new_days, RELEASE_BUCKETS + 2
        missing = [d for d in days.tolist() if d not in cache]
        step = max(1, chunk // max(self.n_items, 1))
        for start in range(0, len(missing), step):
            part = missing[start : start + step]
            d = torch.tensor(part, dtype=torch.int64, device=days.device)[:, None]
            index = self._release_by_day(d, None)  # (M, N)
            new = ~self.is_known(d * _DAY, None)
            flat = (index + K * torch.arange(len(part), device=d.device)[:, None])[new]
            counts = torch.bincount(flat, minlength=len(part) * K).view(len(part), K)
            cache.update(zip(part, counts.float().unbind(0), strict=True))
        return torch.stack([cache[d] for d in days.tolist()]) if len(days) else torch.zeros(0, K)

    def is_known(self, ts: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """Whether the shifted item ``rows`` (``None``: rows 1..N) had an event before
        ``ts - new_for`` (int64 epoch seconds), broadcast together. An item that had
        none is scored from its content alone in training (:meth:`content_vectors`), as
        a cold item is served: its id row, trained on later events, would tell the past
        about the future. Without item age every item counts as known."""
        if self.first_ts is None:
            shape = (self.n_items,) if rows is None else rows.shape
            shape = torch.broadcast_shapes(ts.shape, shape)
            return torch.ones(shape, dtype=torch.bool, device=ts.device)
        first_ts = self.first_ts[1:] if rows is None else self.first_ts[rows]
        return first_ts < ts - self.config.new_for

    def content_vectors(self, rows: torch.Tensor | None) -> torch.Tensor | None:
        """The content part of the shifted item ``rows`` (``None``: rows 1..N),
        ``(..., D)``: the vector without its id embedding (``None`` without content)."""
        if self.proj is None:
            return None
        c = self.proj(self.content[1:] if rows is None else self.content[rows])
        return c * self.gate if self.gate is not None else c

    def age_scores(
        self, ts: torch.Tensor, rows: torch.Tensor | None, norm: torch.Tensor
    ) -> torch.Tensor:
        """The age biases of the shifted item ``rows`` (``None``: rows 1..N) for a
        prediction at ``ts`` (int64 epoch seconds), broadcast together; ``norm`` as
        :meth:`new_norm` of ``ts``. Item age: ``age_bias[1 + bucket]`` for an item
        first seen before ``ts`` (compared to the second), else ``age_bias[0] - norm``
        (the new items share one learned mass). Release age, added: ``release_bias``
        at :meth:`release_index` (so with both, the new items' mass is split by time
        since release)."""
        total = None
        if self.age_bias is not None:
            index = self.age_index(ts, rows)
            new = self.age_bias[0] - norm
            total = torch.where(index > 0, _lookup(self.age_bias, index), new)
        if self.release_bias is not None:
            part = self._release_part(ts, rows)
            total = part if total is None else total + part
        return total

    @torch.no_grad()
    def age_index(self, ts: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """Row of ``age_bias`` for the shifted item ``rows`` (``None``: rows 1..N) at
        ``ts`` (int64 epoch seconds), broadcast: 0 for an item not known then
        (:meth:`is_known`, decided on seconds), else ``1 + floor(log2(1 + age in
        hours))`` (capped; float32 hours are coarse at epoch scale, which moves only
        bucket edges)."""
        first_h = self._first()[0][1:] if rows is None else self._first()[0][rows]
        age = (ts_hours(ts) - first_h).clamp_min(0.0)  # inf: not known, masked below
        bucket = torch.log2(1.0 + age).floor_().clamp_(max=AGE_BUCKETS - 1).to(torch.int64)
        return torch.where(self.is_known(ts, rows), bucket + 1, 0)

    def _release_part(self, ts: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """``release_bias`` at :meth:`release_index`. Against every item at ``P``
        times ``(P, 1)`` it is looked up once per distinct day and spread to the
        times, so the ``(P, N)`` indices never exist (the bias depends on the day)."""
        if rows is None and ts.dim() == 2 and ts.shape[1] == 1 and ts.shape[0] > 1:
            day = torch.div(ts[:, 0], _DAY, rounding_mode="floor")
            days, inverse = torch.unique(day, return_inverse=True)
            by_day = _lookup(self.release_bias, self._release_by_day(days[:, None], None))
            return by_day.index_select(0, inverse)  # its backward: index_add, fast
        return _lookup(self.release_bias, self.release_index(ts, rows))

    @torch.no_grad()
    def release_index(self, ts: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """Row of ``release_bias`` for the shifted item ``rows`` (``None``: rows 1..N) at
        ``ts`` (int64 epoch seconds), broadcast, by UTC calendar days: 0 release
        unknown, 1 released on a later day than ``ts``'s, else ``2 + floor(log2(1 +
        days from the release day to ts's day))`` (capped)."""
        return self._release_by_day(torch.div(ts, _DAY, rounding_mode="floor"), rows)

    @torch.no_grad()
    def _release_by_day(self, day: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        rel = self.release_ts[1:] if rows is None else self.release_ts[rows]
        unknown = rel == NEVER
        rel_day = torch.div(torch.where(unknown, 0, rel), _DAY, rounding_mode="floor")
        since = day - rel_day
        bucket = torch.log2(1.0 + since.clamp_min(0).to(torch.float32)).floor_()
        index = torch.where(since < 0, 1, bucket.clamp_(max=RELEASE_BUCKETS - 1).long() + 2)
        return torch.where(unknown, 0, index)

    @torch.no_grad()
    def init_age_bias(self, ts: torch.Tensor, targets: torch.Tensor, chunk: int = 2**24) -> None:
        """Start ``age_bias`` at the log-rate at which the targets (shifted rows
        ``targets`` at epoch seconds ``ts``, a sample of the fit's) fall in each age
        bucket per candidate item there, the new items counted as one candidate (they
        share one mass), smoothed towards the overall rate and centred on the
        candidates' mean, so a typical item starts at 0 as without the bias. Trained
        from zero instead, the new items' bias (scored ``- new_norm``, about
        ``-log N`` early in a fit) takes hundreds of steps to climb to what the data
        say."""
        K = AGE_BUCKETS + 1
        candidates = torch.zeros(K, dtype=torch.float64)
        step = max(1, chunk // max(self.n_items, 1))
        for start in range(0, len(ts), step):
            b = self.age_index(ts[start : start + step, None], None)
            counts = torch.bincount(b.flatten(), minlength=K).double().cpu()
            counts[0] = float((b == 0).any(dim=1).sum())  # the new items: one candidate
            candidates += counts
        hits = torch.bincount(self.age_index(ts, targets), minlength=K).double()
        self.age_bias.copy_(_centred_log_rates(hits, candidates).to(self.age_bias))

    @torch.no_grad()
    def init_release_bias(
        self, ts: torch.Tensor, targets: torch.Tensor, chunk: int = 2**24
    ) -> None:
        """Start ``release_bias`` as :meth:`init_age_bias` starts ``age_bias``: the
        log-rate of targets per candidate item in each release-age bucket (every item
        a candidate), smoothed and centred."""
        K = RELEASE_BUCKETS + 2
        days, mult = torch.unique(torch.div(ts, _DAY, rounding_mode="floor"), return_counts=True)
        candidates = torch.zeros(K, dtype=torch.float64)
        step = max(1, chunk // max(self.n_items, 1))
        for start in range(0, len(days), step):
            table = self._release_by_day(days[start : start + step, None], None)  # (U, N)
            weight = mult[start : start + step, None].expand_as(table).double()
            candidates += torch.bincount(table.flatten(), weight.flatten(), minlength=K).cpu()
        hits = torch.bincount(self.release_index(ts, targets), minlength=K).double().cpu()
        self.release_bias.copy_(_centred_log_rates(hits, candidates).to(self.release_bias))

    @property
    def n_items(self) -> int:
        return self.id_emb.num_embeddings - 1

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Shifted rows ``(...)`` -> vectors ``(..., D)`` (:data:`OOV_ROW` allowed)."""
        uniq, inverse = torch.unique(rows, return_inverse=True)
        oov = uniq < 0
        has_oov = bool(oov.any())
        if has_oov:
            uniq = uniq.clamp_min(0)
        v = self.id_emb(uniq)
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(len(uniq), device=v.device) >= self.config.id_dropout
            v = v * keep[:, None]
        if self.proj is not None:
            c = self.proj(self.content[uniq])
            v = v + (c * self.gate if self.gate is not None else c)
        if has_oov:
            stand_in = self.oov if self.oov is not None else v.new_zeros(v.shape[1])
            v = torch.where(oov[:, None], stand_in, v)
        return v[inverse]

    def all(self) -> torch.Tensor:
        """Vectors of every item, ``(N, D)``, in item-row order."""
        return self(torch.arange(1, self.n_items + 1, device=self.id_emb.weight.device))

    def grow(self, content_new: torch.Tensor | None, n_new: int) -> tuple[nn.Parameter, ...]:
        """Add ``n_new`` items with zero id rows and the given content ``(n_new, F)``.

        Returns ``(old_weight, new_weight)`` so the optimiser state can follow.
        """
        old = self.id_emb.weight
        new = nn.Parameter(torch.cat([old.detach(), old.new_zeros(n_new, old.shape[1])]))
        sparse = self.id_emb.sparse  # as the trainer last set it
        emb = nn.Embedding(len(new), old.shape[1], padding_idx=0, device=old.device, sparse=sparse)
        emb.weight = new
        self.id_emb = emb
        if self.content is not None:
            if content_new is None:
                content_new = self.content.new_zeros(n_new, self.content.shape[1])
            self.content = torch.cat([self.content, content_new.to(self.content)])
        for name in ("first_ts", "release_ts"):  # new rows: no first event, no release
            times = getattr(self, name)
            if times is not None:
                setattr(self, name, torch.cat([times, times.new_full((n_new,), NEVER)]))
        self._first_changed()
        return old, new

    @torch.no_grad()
    def reset_rows(self, rows: torch.Tensor, content: torch.Tensor | None = None) -> None:
        """Start the shifted ``rows`` ``(R,)`` over as new items: zero id embedding and
        the given content ``(R, F)`` (zero when ``None``)."""
        self.id_emb.weight[rows] = 0.0
        if self.content is not None:
            self.content[rows] = 0.0 if content is None else content.to(self.content)
        for times in (self.first_ts, self.release_ts):  # a new item: no event, no release
            if times is not None:
                times[rows] = NEVER
        self._first_changed()


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention under an additive mask ``(B, 1, L, L)`` (0 or -inf)."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))``."""

    def __init__(self, dim: int, n_heads: int, dropout: float, ffn_mult: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), allowed))
        return x + self.drop(self.ffn(self.norm2(x)))


def relative_time_buckets(gaps: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """``(B, L, L)`` log2 buckets of the time from each key event (last axis) to each
    query event (middle axis), read from the encoder's gap buckets ``(B, L)`` (see
    :func:`lifelongrec.nn.gap_buckets`): a bucket ``b >= 2`` stands for its lower bound
    ``2**(b - 2) - 1`` seconds, padding and first events for 0; the times between two
    events are the sums of the gaps after the key up to the query. Keys after the
    query (masked anyway) get bucket 0."""
    b = gaps.to(torch.float64)
    seconds = torch.where(b >= 2, torch.exp2(b - 2) - 1, torch.zeros_like(b))
    t = torch.cumsum(seconds, dim=1)
    delta = (t[:, :, None] - t[:, None, :]).clamp_min(0)
    return torch.log2(1 + delta).floor().clamp_max(n_buckets - 1).long()


class HSTUBlock(nn.Module):
    """An HSTU layer (Zhai et al. 2024): ``U, V, Q, K = SiLU(W1 LN(x))`` split in four;
    per head, ``A = SiLU(Q K^T + bias) * mask / max_len`` (pointwise attention, no
    softmax: how much history matches is kept, not normalised away), with ``bias``
    learned per relative position and per relative-time bucket; then
    ``x + W2 dropout(LN(A V) * U)``. ``forward(x (B, L, D), mask (B, 1, L, L) of 0/1,
    time_buckets (B, L, L)) -> (B, L, D)``."""

    def __init__(
        self, dim: int, n_heads: int, dropout: float, max_len: int, n_time_buckets: int
    ) -> None:
        super().__init__()
        self.n_heads, self.max_len = n_heads, max_len
        self.norm = nn.LayerNorm(dim)
        self.uvqk = nn.Linear(dim, 4 * dim)
        self.out_norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        # embeddings (no weight decay): one bias per head per distance / time bucket
        self.rel_pos = nn.Embedding(max_len, n_heads)
        self.rel_time = nn.Embedding(n_time_buckets, n_heads)
        for emb in (self.rel_pos, self.rel_time):
            nn.init.zeros_(emb.weight)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, time_buckets: torch.Tensor
    ) -> torch.Tensor:
        B, L, D = x.shape
        H = self.n_heads
        u, v, q, k = F.silu(self.uvqk(self.norm(x))).split(D, dim=-1)
        q, k, v = (t.view(B, L, H, D // H).transpose(1, 2) for t in (q, k, v))
        idx = torch.arange(L, device=x.device)
        distance = (idx[:, None] - idx[None, :]).clamp_min(0)  # (L, L)
        bias = self.rel_pos(distance).permute(2, 0, 1)[None] + self.rel_time(time_buckets).permute(
            0, 3, 1, 2
        )
        a = F.silu(q @ k.transpose(-1, -2) + bias) * mask / self.max_len
        y = (a @ v).transpose(1, 2).reshape(B, L, D)
        return x + self.out(self.drop(self.out_norm(y) * u))


class UserEncoder(nn.Module):
    """Causal transformer over left-padded event sequences.

    ``forward(item_vecs (B, L, D), items (B, L), types (B, L), gaps (B, L)) -> (B, L, D)``;
    ``items == 0`` marks padding (:data:`OOV_ROW` is a real event). Output ``t``
    depends on events ``<= t`` only.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        D, L = config.dim, config.max_len
        self.type_emb = nn.Embedding(config.n_type_ids, D, padding_idx=TYPE_PAD)
        self.pos_emb = nn.Embedding(L, D)
        self.gap_emb = nn.Embedding(config.n_time_buckets, D, padding_idx=GAP_PAD)
        for emb in (self.type_emb, self.pos_emb, self.gap_emb):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.type_emb.weight[TYPE_PAD].zero_()
            self.gap_emb.weight[GAP_PAD].zero_()
        self.drop = nn.Dropout(config.dropout)
        if config.kind == "hstu":
            self.blocks = nn.ModuleList(
                HSTUBlock(D, config.n_heads, config.dropout, L, config.n_time_buckets)
                for _ in range(config.n_layers)
            )
        else:
            self.blocks = nn.ModuleList(
                TransformerBlock(D, config.n_heads, config.dropout, config.ffn_mult)
                for _ in range(config.n_layers)
            )
        self.norm = nn.LayerNorm(D)
        self.register_buffer("causal", torch.ones(L, L, dtype=torch.bool).tril(), persistent=False)

    def forward(
        self, item_vecs: torch.Tensor, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor
    ) -> torch.Tensor:
        L = items.shape[1]
        pos = torch.arange(self.config.max_len - L, self.config.max_len, device=items.device)
        x = item_vecs + self.type_emb(types) + self.pos_emb(pos)[None] + self.gap_emb(gaps)
        valid = items != 0  # (B, L); OOV_ROW (-1) is an event, 0 padding
        x = self.drop(x) * valid[..., None]
        causal = self.causal[-L:, -L:]
        eye = torch.eye(L, dtype=torch.bool, device=items.device)
        allowed = (causal[None] & (valid[:, None, :] | eye[None]))[:, None]  # (B, 1, L, L)
        if self.config.kind == "hstu":
            mask = allowed.to(x.dtype)
            buckets = relative_time_buckets(gaps, self.config.n_time_buckets)
            for block in self.blocks:
                x = block(x, mask, buckets)
            return self.norm(x)
        # an additive float mask runs faster than a boolean one in CPU attention kernels
        allowed = torch.zeros(allowed.shape, device=x.device).masked_fill(~allowed, float("-inf"))
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)


class SequentialModule(nn.Module):
    """Item tower + user encoder + multi-task heads (no loss: see ``MultiTaskLoss``)."""

    def __init__(
        self,
        tower: ItemTowerConfig,
        encoder: EncoderConfig,
        heads: HeadsConfig,
        content: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.item_tower = ItemTower(tower, content)
        self.encoder = UserEncoder(encoder)
        self.heads = MultiTaskHeads(heads)

    def hidden(self, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
        """Encoder output at every position, ``(B, L, D)``."""
        return self.encoder(self.item_tower(items), items, types, gaps)

    def last(
        self, items: torch.Tensor, types: torch.Tensor, gaps: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Head outputs at the last position (the user's state now)."""
        return self.heads(self.hidden(items, types, gaps)[:, -1])


@torch.no_grad()
def encode_users(
    module: SequentialModule,
    inputs: dict[str, np.ndarray],
    rows: np.ndarray,
    device: torch.device,
    batch: int = 512,
) -> dict[str, np.ndarray]:
    """Head outputs at the last position (``"user"`` ``(n, D)`` and the auxiliary heads'
    logits) of the rows ``rows`` of the encoder inputs ``inputs`` (``items``, ``types``,
    ``gaps``, ``(U, L)`` each), ``batch`` rows at a time, in eval mode. Empty ``rows``
    give an empty dict."""
    if module.training:
        module.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(rows), batch):
        r = rows[start : start + batch]
        items = inputs["items"][r]
        # Columns that are padding in every row change no output (positions count from
        # the right, padded keys are masked): cut them, attention is quadratic in L.
        used = (items != 0).any(axis=0)
        first = int(used.argmax()) if used.any() else items.shape[1] - 1  # keep one column
        out = module.last(
            *(
                torch.as_tensor(a[:, first:], device=device)
                for a in (items, inputs["types"][r], inputs["gaps"][r])
            )
        )
        for key, value in out.items():
            parts.setdefault(key, []).append(value.cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def padded_content(content: np.ndarray | None, n_items: int, dim: int) -> torch.Tensor | None:
    """The item tower's ``content`` buffer ``(N + 1, F)`` (row 0: padding) of item content
    ``(N, F)`` (``None``: zeros); ``None`` without content features (``F = 0``)."""
    if not dim:
        return None
    c = torch.zeros(n_items + 1, dim)
    if content is not None:
        c[1:] = torch.as_tensor(content)
    return c
