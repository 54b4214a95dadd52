"""Request and response bodies of the HTTP API (pydantic models: validated on the way
in, documented in the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

__all__ = [
    "Ack",
    "Erased",
    "EventBatch",
    "EventIn",
    "EventsBody",
    "ItemIn",
    "ItemOut",
    "Recommendation",
    "Recommendations",
    "Similar",
]

Id = Annotated[str, Field(min_length=1, max_length=256, examples=["u00042"])]


class EventIn(BaseModel):
    """One behaviour event."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    timestamp: Annotated[int, Field(ge=0, description="UTC epoch seconds")]
    event_type: Annotated[str, Field(min_length=1, max_length=64)] = "interaction"
    value: float | None = Field(default=None, description="e.g. a rating; null for none")
    event_id: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None,
        description="Idempotency key: an event whose key is stored is not stored twice",
    )


class EventBatch(BaseModel):
    """A batch of events, written all or nothing."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


def _body_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "batch" if "events" in value else "one"
    return "batch" if isinstance(getattr(value, "events", None), list) else "one"


EventsBody = Annotated[
    Annotated[EventBatch, Tag("batch")] | Annotated[EventIn, Tag("one")],
    Discriminator(_body_kind),
]


class Ack(BaseModel):
    """What was written (durably, before this reply)."""

    n_received: int
    n_written: int
    n_duplicates: int = Field(description="events whose event_id was already stored")
    last_seq: int = Field(description="sequence number of the newest stored event")


class Recommendation(BaseModel):
    item_id: str
    score: float
    reason: str | None = None


class Recommendations(BaseModel):
    user_id: str
    model_version: str
    cold_start: bool = Field(description="the user is unknown: popular and fresh items")
    items: list[Recommendation]


class Similar(BaseModel):
    item_id: str
    model_version: str
    items: list[Recommendation]


class ItemIn(BaseModel):
    """A catalogue entry (the item id is in the path)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Field(max_length=10_000)] | None = None
    categories: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=100
    )
    attributes: dict[str, Any] = Field(default_factory=dict)


class ItemOut(BaseModel):
    item_id: str
    created: bool


class Erased(BaseModel):
    user_id: str
    events_erased: int
    state_erased: bool
