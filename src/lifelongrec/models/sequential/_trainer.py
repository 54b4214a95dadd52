"""The one training path of ``fit``, ``partial_fit`` and online steps.

:class:`Trainer` owns what training changes besides the module's weights: the AdamW
optimiser and its state, and the elastic-weight-consolidation anchor of the last fit or
update. :meth:`Trainer.train` runs epochs of the one multi-task loss
(:class:`~lifelongrec.nn.MultiTaskLoss`: next item, auxiliary heads, distillation from a
teacher, the EWC pull) over windows; a fit adds early stopping on a validation set, an
update a teacher, an online step runs each epoch as one mini-batch of all its windows.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from lifelongrec.metrics import auc, hit_rate_from_ranks, ndcg_at_k, ndcg_from_ranks
from lifelongrec.models.sequential._windows import ValidationSet
from lifelongrec.nn import (
    EWC,
    Distillation,
    EarlyStopping,
    MultiTaskLoss,
    StepThreads,
    TrainConfig,
    Windows,
    estimate_fisher,
    grow_parameter,
    load_optimizer_arrays,
    make_optimizer,
    optimizer_arrays,
    shard,
    target_ranks,
    train_epoch,
    world,
)

__all__ = ["Forgetting", "Trainer", "TrainResult", "evaluate"]

_SCORE_BATCH = 512  # users encoded at once when ranking
_ID_WEIGHT = "item_tower.id_emb.weight"


@dataclass(frozen=True)
class Forgetting:
    """The anti-forgetting terms of one training run: distillation from ``teacher`` (a
    frozen copy of the module before the update; ``None``: off) and the EWC pull towards
    the trainer's anchor; with ``fisher_batches > 0`` a new anchor is estimated from that
    many mini-batches at the end."""

    teacher: nn.Module | None = None
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    ewc_weight: float = 0.0
    fisher_batches: int = 0


@dataclass
class TrainResult:
    """Per epoch: ``records`` (``epoch``, the mean loss of each task, ``train_seconds``,
    with validation ``val_ndcg@10`` and ``val_seconds``) and ``losses`` (the mean loss of each task); with
    early stopping, the best epoch and its validation metrics."""

    records: list[dict[str, Any]] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict[str, dict[str, float]] | None = None

    def mean_losses(self) -> dict[str, float]:
        """Mean of each task's loss over the epochs."""
        sums: dict[str, float] = {}
        for losses in self.losses:
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value
        return {name: value / len(self.losses) for name, value in sums.items()}


class Trainer:
    """Trains ``module`` (see the module docstring).

    Parameters
    ----------
    module
        The sequential module; its parameters are optimised in place.
    lr, weight_decay
        AdamW settings (the learning rate is set again from each run's config).
    device
        Where batches go.
    """

    def __init__(self, module: nn.Module, lr: float, weight_decay: float, device: torch.device):
        self.module = module
        self.device = device
        self.optimizer = make_optimizer(module, lr, weight_decay)
        self.ewc: EWC | None = None
        #: The CPU threads of each step (chosen by timing; kept across runs).
        self.threads = StepThreads()

    def shrink(self, factor: float) -> None:
        """Multiply every weight of the module by ``factor`` (an update's shrink before
        it trains: ``partial_fit_shrink``); 1 leaves them."""
        if factor < 1.0:
            with torch.no_grad():
                for weight in self.module.parameters():
                    weight.mul_(factor)

    def train(
        self,
        windows: Windows,
        config: TrainConfig,
        rng: np.random.Generator,
        item_counts: np.ndarray,
        item_categories: sp.csr_matrix | None,
        *,
        forgetting: Forgetting = Forgetting(),  # noqa: B008 (frozen)
        validation: ValidationSet | None = None,
        batch_size: int | None = None,
        progress: str | None = None,
    ) -> TrainResult:
        """``config.epochs`` passes over ``windows`` in shuffled mini-batches of
        ``batch_size`` (``None``: ``config.batch_size``) drawn with ``rng``.

        ``item_counts`` ``(N,)`` give the logQ correction of sampled softmax;
        ``item_categories`` ``(N, C)`` the category targets (``None``: no category
        loss). With ``validation``, each epoch ends with the full-ranking NDCG@10 of the
        held-out events; training stops after ``config.patience`` epochs without a
        better one and the best weights are restored. ``progress`` names a progress bar
        over epochs (``None``: none). The module is left in eval mode.
        """
        result = TrainResult()
        if len(windows) == 0 or config.epochs == 0:
            return result
        module, dev = self.module, self.device
        counts = np.asarray(item_counts, dtype=np.float64) + 1e-3
        item_prob = torch.as_tensor(counts / counts.sum(), dtype=torch.float32, device=dev)
        f = forgetting
        distill = None if f.teacher is None else Distillation(f.teacher, f.distill_temperature)
        loss = MultiTaskLoss(
            module,
            config,
            item_categories,
            item_prob,
            distill,
            f.distill_weight,
            self.ewc,
            f.ewc_weight,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr
        # A loss that scores the whole catalogue touches every id row at every step (a
        # dense gradient is cheaper); a sampled one touches the rows of its batch and
        # negatives: a sparse gradient, whose rows alone the optimiser updates (RowAdamW),
        # so a step at a million items costs the batch, not the table.
        samples = config.loss == "gbce" or not config.full_softmax
        module.item_tower.id_emb.sparse = config.sparse_rows and samples
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        stopper = EarlyStopping(config.patience) if validation is not None else None
        plateau = None
        if stopper is not None and config.lr_plateau > 0:
            # torch halves after ``patience + 1`` checks without a better value
            plateau = ReduceLROnPlateau(
                self.optimizer, "max", 0.5, patience=config.lr_plateau - 1, threshold=0.0
            )
        bar = tqdm(
            range(config.epochs),
            desc=progress,
            unit="epoch",
            disable=True if progress is None else None,
            leave=False,
        )
        size = config.batch_size if batch_size is None else batch_size
        all_windows, step, shuffle, joined = windows, loss, rng, contextlib.nullcontext
        rank, n_procs = world()
        if n_procs > 1:  # data-parallel under torchrun (lifelongrec.nn._distributed)
            windows = shard(windows, rank, n_procs)
            size = max(1, -(-size // n_procs))  # one step averages a global batch
            step = DistributedDataParallel(
                loss, find_unused_parameters=True, broadcast_buffers=False
            )
            shuffle = np.random.default_rng([int(rng.integers(2**32)), rank])
            joined = step.join  # shards may differ by a batch: the others wait
        threads = self.threads
        # The weights' moving average (``ema_decay``): what validation scores, what the
        # best epoch keeps and what the run leaves in the module.
        average, judged, after_step = None, module, None
        if config.ema_decay > 0:
            decay = float(config.ema_decay)
            average = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay))
            judged = average.module

            def after_step() -> None:
                average.update_parameters(module)

        try:
            with threads.running(dev, config.threads):
                for epoch in bar:
                    t0 = time.perf_counter()
                    module.train()
                    with joined():
                        losses = train_epoch(
                            step,
                            windows,
                            self.optimizer,
                            params,
                            size,
                            shuffle,
                            config.grad_clip,
                            dev,
                            threads,
                            after_step,
                        )
                    if average is not None:  # buffers follow the module (not averaged)
                        with torch.no_grad():
                            for mine, theirs in zip(
                                judged.buffers(), module.buffers(), strict=True
                            ):
                                mine.copy_(theirs)
                    record: dict[str, Any] = {"epoch": epoch, **losses}
                    record["train_seconds"] = time.perf_counter() - t0
                    result.records.append(record)
                    result.losses.append(losses)
                    if stopper is None:
                        bar.set_postfix(loss=f"{losses.get('next_item', 0):.3f}")
                        continue
                    threads.rest()  # validation scores the catalogue: torch's threads
                    t1 = time.perf_counter()
                    metrics = evaluate(judged, validation, dev)
                    record["val_ndcg@10"] = metrics["next_item"]["ndcg@10"]
                    record["val_seconds"] = time.perf_counter() - t1
                    bar.set_postfix(
                        loss=f"{losses.get('next_item', 0):.3f}",
                        ndcg=f"{record['val_ndcg@10']:.4f}",
                    )
                    if stopper.step(record["val_ndcg@10"], epoch, judged, metrics):
                        break
                    if plateau is not None:
                        plateau.step(record["val_ndcg@10"])
                        record["lr"] = self.optimizer.param_groups[0]["lr"]
                bar.close()
                if average is not None and stopper is None:
                    module.load_state_dict(judged.state_dict())
                if stopper is not None:
                    stopper.restore(module)
                    result.best_epoch, result.best_metrics = stopper.best_epoch, stopper.best_info
                if f.fisher_batches > 0:  # what was just learned, for the next update's pull
                    plain = MultiTaskLoss(module, config, item_categories, item_prob)
                    self.ewc = estimate_fisher(
                        plain, module, all_windows, config.batch_size, f.fisher_batches, rng, dev
                    )
        finally:
            module.eval()
        return result

    # ------------------------------------------------------------- item rows
    def grow_items(self, content: torch.Tensor | None, n_new: int) -> None:
        """Add ``n_new`` item rows to the item tower (zero id rows, ``content``) with
        zero optimiser state."""
        old, new = self.module.item_tower.grow(content, n_new)
        grow_parameter(self.optimizer, old, new)

    @torch.no_grad()
    def reset_items(self, rows: np.ndarray, content: np.ndarray | None = None) -> None:
        """Start item ``rows`` over as new: zero id embedding and AdamW moments, the given
        content (zero when ``None``), no EWC anchor."""
        if len(rows) == 0:
            return
        tower = self.module.item_tower
        weight = tower.id_emb.weight
        t = torch.as_tensor(np.asarray(rows, dtype=np.int64) + 1, device=weight.device)
        c = None
        if content is not None and tower.content is not None:
            c = torch.as_tensor(content, device=weight.device)
        tower.reset_rows(t, c)
        for value in self.optimizer.state.get(weight, {}).values():
            if torch.is_tensor(value) and value.shape == weight.shape:
                value[t] = 0.0
        ewc = self.ewc
        if ewc is not None and _ID_WEIGHT in ewc.fisher:
            inside = t[t < ewc.fisher[_ID_WEIGHT].shape[0]]
            ewc.fisher[_ID_WEIGHT][inside] = 0.0
            ewc.anchor[_ID_WEIGHT][inside] = 0.0

    # ----------------------------------------------------------------- state
    def get_state(self) -> dict[str, np.ndarray]:
        """Optimiser state (``optimizer/<param>/<key>``) and the EWC anchor
        (``ewc/fisher/<param>``, ``ewc/anchor/<param>``) as numpy arrays."""
        named = list(self.module.named_parameters())
        arrays = {f"optimizer/{k}": v for k, v in optimizer_arrays(self.optimizer, named).items()}
        if self.ewc is not None:
            for name, f in self.ewc.fisher.items():
                arrays[f"ewc/fisher/{name}"] = f.detach().cpu().numpy()
                arrays[f"ewc/anchor/{name}"] = self.ewc.anchor[name].detach().cpu().numpy()
        return arrays

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`get_state`."""
        named = list(self.module.named_parameters())
        opt = {k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        load_optimizer_arrays(self.optimizer, named, opt)
        dev = self.device
        fisher = {
            k[11:]: torch.as_tensor(v, device=dev)
            for k, v in arrays.items()
            if k.startswith("ewc/fisher/")
        }
        anchor = {
            k[11:]: torch.as_tensor(v, device=dev)
            for k, v in arrays.items()
            if k.startswith("ewc/anchor/")
        }
        self.ewc = EWC(fisher, anchor) if fisher else None

    def nbytes(self) -> tuple[int, int]:
        """Bytes of the optimiser state and of the EWC anchor."""
        opt = _tensor_bytes(v for st in self.optimizer.state.values() for v in st.values())
        ewc = self.ewc
        return opt, 0 if ewc is None else _tensor_bytes(
            [*ewc.fisher.values(), *ewc.anchor.values()]
        )


def _tensor_bytes(ts: Any) -> int:
    return int(sum(t.numel() * t.element_size() for t in ts if torch.is_tensor(t)))


# ------------------------------------------------------------------ validation
@torch.no_grad()
def evaluate(
    module: nn.Module, val: ValidationSet, device: torch.device
) -> dict[str, dict[str, float]]:
    """Full-ranking NDCG@10 / HR@10 of the held-out events (the items each user saw left
    out, the target excepted; ties ranked above) and the heads' metrics."""
    module.eval()
    tower = module.item_tower
    V = tower.all()
    aged = bool(getattr(tower, "has_age", False))
    masks = getattr(tower, "age_bias", None) is not None  # item age: new items by content
    C = tower.content_vectors(None) if masks else None
    n = len(val)
    ranks, type_probs, cat_logits = [], [], []
    seen_r, seen_c = val.seen
    for start in range(0, n, _SCORE_BATCH):
        sl = slice(start, start + _SCORE_BATCH)
        out = module.last(
            *(torch.as_tensor(m[sl], device=device) for m in (val.items, val.types, val.gaps))
        )
        S = out["user"] @ V.T
        if aged:  # at each held-out event's time: the age biases, new items by content
            ts = torch.as_tensor(val.target_ts[sl], device=device)
            if C is not None:
                S = torch.where(tower.is_known(ts[:, None], None), S, out["user"] @ C.T)
            elif masks:
                S = S.masked_fill(~tower.is_known(ts[:, None], None), 0.0)
            S = S + tower.age_scores(ts[:, None], None, tower.new_norm(ts)[:, None])
        sel = (seen_r >= start) & (seen_r < start + _SCORE_BATCH)
        targets = torch.as_tensor(val.targets[sl], device=device)
        ranks.append(target_ranks(S, targets, seen_r[sel] - start, seen_c[sel]).cpu().numpy())
        if "event_type" in out:
            type_probs.append(torch.softmax(out["event_type"], -1).cpu().numpy())
        if "category" in out:
            cat_logits.append(out["category"].cpu().numpy())
    r = np.concatenate(ranks)
    metrics: dict[str, dict[str, float]] = {
        "next_item": {
            "ndcg@10": float(ndcg_from_ranks(r, 10).mean()),
            "hr@10": float(hit_rate_from_ranks(r, 10).mean()),
            "n_users": int(n),
        }
    }
    if type_probs:
        metrics["event_type"] = _type_metrics(np.concatenate(type_probs), val.target_types)
    if cat_logits:
        metrics["category"] = _category_metrics(np.concatenate(cat_logits), val.target_categories)
    return metrics


def _type_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    ok = targets >= 0
    out: dict[str, float] = {"n": int(ok.sum())}
    if not ok.any():
        return out
    p, t = probs[ok], targets[ok]
    out["accuracy"] = float((p.argmax(1) == t).mean())
    if p.shape[1] == 2 and 0 < t.sum() < len(t):
        out["auc"] = float(auc(p[None, :, 1], (t == 1)[None])[0])
    return out


def _category_metrics(logits: np.ndarray, soft: sp.csr_matrix) -> dict[str, float]:
    has = np.diff(soft.indptr) > 0
    out: dict[str, float] = {"n": int(has.sum())}
    if not has.any():
        return out
    lg, target = logits[has], soft[has].toarray()
    logp = lg - lg.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    out["cross_entropy"] = float(-(target * logp).sum(1).mean())
    out["accuracy@1"] = float((target[np.arange(len(lg)), lg.argmax(1)] > 0).mean())
    top = np.argsort(-lg, axis=1, kind="stable")[:, :10]
    relevant = [np.flatnonzero(row).tolist() for row in target > 0]
    out["ndcg@10"] = float(ndcg_at_k(top.tolist(), relevant, 10).mean())
    return out
