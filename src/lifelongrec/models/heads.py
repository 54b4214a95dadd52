"""Multi-task heads over a shared sequence encoder, with an optional MMoE mixer.

Tasks, in a fixed order (:data:`TASKS`):

* ``next_item``: the user vector (retrieval; scored by dot product with item vectors);
* ``event_type``: logits of the next event's type (e.g. purchase vs view, like vs
  dislike), ``T`` classes;
* ``category``: logits of the next item's category (softmax over ``C`` categories).

Without MMoE every task reads the encoder output ``h`` directly. With
``mmoe_experts = E > 0`` (Ma et al., KDD 2018) ``E`` shared expert MLPs are mixed per
task by a softmax gate, and the task representation is ``h + mix`` (a residual, so
switching MMoE on does not change the scale of the user vector).

Shapes: ``(..., D)`` in (any leading dimensions, e.g. ``(B, L, D)``), ``(..., D)``,
``(..., T)`` and ``(..., C)`` out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TASKS", "CategoryHead", "EventTypeHead", "HeadsConfig", "MMoE", "MultiTaskHeads"]

TASKS = ("next_item", "event_type", "category")


@dataclass(frozen=True)
class HeadsConfig:
    """Sizes of the heads; a class count of 0 (or 1) switches that head off."""

    dim: int
    n_event_types: int = 0
    n_categories: int = 0
    mmoe_experts: int = 0
    dropout: float = 0.0

    @property
    def tasks(self) -> tuple[str, ...]:
        on = {"next_item": True, "event_type": self.n_event_types > 1}
        on["category"] = self.n_categories > 1
        return tuple(t for t in TASKS if on[t])


class MMoE(nn.Module):
    """Multi-gate mixture of experts: ``E`` expert MLPs ``D -> D``, one gate per task."""

    def __init__(self, dim: int, n_experts: int, tasks: tuple[str, ...], dropout: float) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout))
            for _ in range(n_experts)
        )
        self.gates = nn.ModuleDict({t: nn.Linear(dim, n_experts) for t in tasks})

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        e = torch.stack([expert(h) for expert in self.experts], dim=-2)  # (..., E, D)
        out = {}
        for task, gate in self.gates.items():
            g = torch.softmax(gate(h), dim=-1).unsqueeze(-1)  # (..., E, 1)
            out[task] = h + (g * e).sum(dim=-2)
        return out


class EventTypeHead(nn.Module):
    """Logits of the next event's type: ``(..., D) -> (..., T)``."""

    def __init__(self, dim: int, n_types: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, n_types)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)


class CategoryHead(nn.Module):
    """Logits of the next item's category: ``(..., D) -> (..., C)``."""

    def __init__(self, dim: int, n_categories: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, n_categories)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)


class MultiTaskHeads(nn.Module):
    """Encoder output in, one output per active task out (keys ``"user"``,
    ``"event_type"``, ``"category"``; inactive heads are absent)."""

    def __init__(self, config: HeadsConfig) -> None:
        super().__init__()
        self.config = config
        tasks = config.tasks
        self.mmoe = (
            MMoE(config.dim, config.mmoe_experts, tasks, config.dropout)
            if config.mmoe_experts > 0
            else None
        )
        self.event_type = (
            EventTypeHead(config.dim, config.n_event_types) if "event_type" in tasks else None
        )
        self.category = (
            CategoryHead(config.dim, config.n_categories) if "category" in tasks else None
        )

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        reps = self.mmoe(h) if self.mmoe is not None else dict.fromkeys(self.config.tasks, h)
        out = {"user": reps["next_item"]}
        if self.event_type is not None:
            out["event_type"] = self.event_type(reps["event_type"])
        if self.category is not None:
            out["category"] = self.category(reps["category"])
        return out
