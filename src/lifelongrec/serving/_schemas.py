"""Request and response bodies of the HTTP API (pydantic models: validated on the way
in, documented in the OpenAPI schema).

The wire is strict: a JSON ``true`` is not a timestamp, the string ``"5"`` is not a
value, ``NaN`` and ``Infinity`` are not numbers, and text must be encodable as UTF-8 (a
lone surrogate such as ``"\\ud800"`` is refused). Every refusal is a 422 naming the
field (see :class:`ErrorOut`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
)

from lifelongrec.data import TIMESTAMP_MAX, TIMESTAMP_MIN

__all__ = [
    "Ack",
    "ArmIn",
    "CatalogueItem",
    "Erased",
    "ErrorOut",
    "EventBatch",
    "EventIn",
    "EventsBody",
    "ExperimentIn",
    "ExperimentRef",
    "GuardrailsIn",
    "ItemBatch",
    "ItemIn",
    "ItemOut",
    "ItemsOut",
    "NamedItemIn",
    "OnlineMetrics",
    "OnlineMetricsRow",
    "Recommendation",
    "Recommendations",
    "Similar",
    "error_responses",
]

_STRICT = ConfigDict(extra="forbid", strict=True)


def _utf8(value: str) -> str:
    """Refuse text that cannot be stored as UTF-8 (lone surrogates from JSON escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text must be valid Unicode: a lone surrogate at position {exc.start}"
        ) from None
    return value


Text = Annotated[str, AfterValidator(_utf8)]
Id = Annotated[Text, Field(min_length=1, max_length=256, examples=["u00042"])]


def _whole(value: Any) -> Any:
    """JSON has one number type: 35753.0 is the integer 35753 (JSON Schema agrees); a
    fraction, ``true`` or a string stays an error."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Timestamp = Annotated[  # the constraints before the validator: they stay in the schema
    int,
    Field(
        ge=TIMESTAMP_MIN,
        le=TIMESTAMP_MAX,
        description="UTC epoch seconds, 0 (1970-01-01) .. 7258118399 (2199-12-31)",
    ),
    BeforeValidator(_whole),
]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class ErrorOut(BaseModel):
    """Every error answer (4xx, and 5xx should one ever happen)."""

    detail: str = Field(description="What was wrong, where, and what was expected")
    error: str | None = Field(default=None, description="The error's kind")
    field: str | None = Field(default=None, description="The offending field, when one is")
    kind: str | None = Field(default=None, description="For an unknown id: user, item, ...")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Every validation problem: loc, msg, type"
    )


class EventIn(BaseModel):
    """One behaviour event."""

    model_config = _STRICT

    user_id: Id
    item_id: Id
    timestamp: Timestamp | None = Field(
        default=None,
        description="UTC epoch seconds; absent or null: the time the server received it",
    )
    event_type: Annotated[Text, Field(min_length=1, max_length=64)] = Field(
        default="interaction",
        description="One of the service's event types (GET /health with a key lists them)",
    )
    value: Finite | None = Field(default=None, description="e.g. a rating; null for none")
    event_id: Annotated[Text, Field(min_length=1, max_length=256)] | None = Field(
        default=None,
        description="Idempotency key: an event whose key is stored is not stored twice",
    )
    request_id: Annotated[Text, Field(min_length=1, max_length=256)] | None = Field(
        default=None,
        description="The request_id of the recommendation this event answers (a click "
        "on a shown item): attributes it to that impression; without it, the event goes "
        "to the latest impression of its item to its user within the attribution window",
    )


class EventBatch(BaseModel):
    """A batch of events, written all or nothing."""

    model_config = _STRICT

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
    title: str | None = Field(default=None, description="With details=true (the default)")
    categories: list[str] | None = Field(
        default=None, description="With details=true (the default)"
    )


class ExperimentRef(BaseModel):
    """The online experiment an answer belongs to."""

    id: str
    arm: str = Field(description="The user's arm (A/B), or 'interleaved'")


class Recommendations(BaseModel):
    request_id: str = Field(
        description="New for every answer: send it with the events that answer it"
    )
    user_id: str
    model_version: str
    cold_start: bool = Field(description="the user is unknown: popular and fresh items")
    items: list[Recommendation]
    experiment: ExperimentRef | None = Field(
        default=None, description="While an online experiment runs: its id and the arm"
    )


class OnlineMetricsRow(BaseModel):
    """Online figures of one model version and arm (and hour), from the impressions
    shown and the feedback events attributed to them."""

    model_version: str
    arm: str | None = Field(description="The experiment arm; null outside experiments")
    hour: int | None = Field(
        default=None, description="With by=hour: the UTC epoch second the hour starts"
    )
    requests: int
    users: int
    impressions: int
    clicks: int = Field(description="Impressions with at least one attributed click")
    ctr: float
    expected_clicks: float = Field(description="Clicks the overall CTR by rank expects")
    coec: float | None = Field(
        description="Position-aware CTR: clicks over expected clicks (1 = average ranker)"
    )
    conversions: int = Field(description="Attributed events of a conversion type")
    conversion_rate: float = Field(description="Conversions per impression")
    events: int = Field(description="Attributed feedback events")
    events_per_user: float


class OnlineMetrics(BaseModel):
    by: str
    click_types: list[str]
    conversion_types: list[str]
    attribution_window: int
    rows: list[OnlineMetricsRow]


ArmName = Annotated[Text, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class ArmIn(BaseModel):
    """One arm of an experiment: a challenger (a registry version) or the champion."""

    model_config = _STRICT

    name: ArmName | None = Field(
        default=None,
        description="'champion' for the live champion (no version); default: "
        "'champion' without a version, 'challenger-N' with one",
    )
    version: Annotated[str, Field(pattern=r"^(v[0-9]{6}|[0-9]{1,6})$")] | None = Field(
        default=None, description="A registry version like v000003 (none: the champion)"
    )
    share: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = Field(
        default=None,
        description="A/B: the arm's share of users (all given shares sum to 1; none: "
        "an even split). Not under interleaving",
    )


class GuardrailsIn(BaseModel):
    """Limits a challenger must keep; breaking one rejects it (with auto)."""

    model_config = _STRICT

    max_p99_ratio: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=3.0, description="Its p99 latency over the champion's, at most"
    )
    max_p99_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="Its p99 latency in ms, at most"
    )
    max_error_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = Field(
        default=0.05, description="Its share of failed answers, at most"
    )


class ExperimentIn(BaseModel):
    """An online experiment: the live champion against registered versions."""

    model_config = _STRICT

    name: Annotated[Text, Field(min_length=1, max_length=200)]
    design: Literal["ab", "interleaving"] = "ab"
    arms: list[ArmIn] = Field(min_length=1, max_length=10)
    primary_metric: Literal["ctr", "conversion"] = "ctr"
    alpha: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.05
    tau: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="The mSPRT mixture's scale (the difference expected); none: 0.01 "
        "(A/B, CTR per answer), 0.05 (interleaving credit)",
    )
    auto: bool = Field(
        default=True, description="Promote a better challenger, reject a worse one, itself"
    )
    min_impressions: Annotated[int, Field(ge=1, le=10**12)] | None = Field(
        default=None, description="Impressions per arm before any decision (none: setting)"
    )
    max_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="Stop without a decision after this long"
    )
    guardrails: GuardrailsIn = Field(default_factory=GuardrailsIn)
    force: bool = Field(
        default=False, description="Test a version the promotion gate rejected anyway"
    )


class Similar(BaseModel):
    item_id: str
    model_version: str
    items: list[Recommendation]


def _scalar(value: Any) -> Any:
    """An attribute value: text (valid Unicode, at most 10,000 characters), a finite
    number, true/false or null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("an attribute value must be a finite number, not NaN or infinity")
        return value
    if isinstance(value, str):
        if len(value) > 10_000:
            raise ValueError("an attribute text must be at most 10,000 characters")
        return _utf8(value)
    raise ValueError(
        f"an attribute value must be text, a number, true/false or null, not {type(value).__name__}"
    )


AttributeValue = Annotated[
    Any,
    PlainValidator(_scalar),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": 10_000},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    ),
]


class ItemIn(BaseModel):
    """A catalogue entry (the item id is in the path)."""

    model_config = _STRICT

    title: Annotated[Text, Field(max_length=10_000)] | None = None
    categories: list[Annotated[Text, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=100
    )
    attributes: dict[Annotated[Text, Field(min_length=1, max_length=256)], AttributeValue] = Field(
        default_factory=dict,
        max_length=100,
        description="Scalar values by name (text, number, true/false, null), e.g. price",
    )


class NamedItemIn(ItemIn):
    """A catalogue entry with its id (batch upserts)."""

    item_id: Id


class ItemBatch(BaseModel):
    """Catalogue entries, written all or nothing."""

    model_config = _STRICT

    items: list[NamedItemIn] = Field(min_length=1)


class ItemOut(BaseModel):
    item_id: str
    created: bool
    live: bool = Field(
        description="Recommendable already (with wait=true always); else within moments"
    )


class CatalogueItem(BaseModel):
    """A catalogue entry as stored."""

    item_id: str
    title: str | None = None
    categories: list[str] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ItemsOut(BaseModel):
    n_received: int
    n_created: int
    n_updated: int
    live: bool = Field(
        description="Recommendable already (with wait=true always); else within moments"
    )


class Erased(BaseModel):
    user_id: str
    events_erased: int
    state_erased: bool


_STATUS_TEXT = {
    400: "A malformed request (e.g. a body that is not JSON)",
    401: "No API key, or an unknown one",
    403: "The API key lacks the scope needed here",
    404: "An unknown id",
    409: "The registry's or the experiments' state does not allow it (e.g. nothing to "
    "roll back to, an experiment running already)",
    413: "The request body is over the size limit",
    422: "A field is missing, of the wrong type or out of range (named in 'field')",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer (one schema)."""
    return {c: {"model": ErrorOut, "description": _STATUS_TEXT[c]} for c in codes}
