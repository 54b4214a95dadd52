"""Online experiments: the live champion against registered versions, A/B or
interleaved, decided by an always-valid sequential test."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from lifelongrec.serving._deps import ServiceDep, require_read, require_write
from lifelongrec.serving._schemas import ExperimentIn, error_responses

router = APIRouter(prefix="/experiments", tags=["experiments"])

ExperimentId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", examples=["exp-1"])
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[require_write],
    summary="Start an experiment: the champion against one or more challengers",
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
def create_experiment(body: ExperimentIn, service: ServiceDep) -> dict[str, Any]:
    """The challengers are registry versions; the champion is the live one. Under `ab`
    each user gets one arm for the whole experiment (a hash of their id), by the arms'
    `share`s (summing to 1; none: an even split); under `interleaving` every answer
    merges the champion's and the one challenger's lists (team draft). The mSPRT on
    `primary_metric` decides; with `auto` a better challenger is promoted and a worse
    one, or one breaking a guardrail, rejected. A version unknown to the registry is a
    404; a second running experiment, a challenger that is the champion, or a version
    the promotion gate rejected (without `force`) a 409."""
    spec = body.model_dump(exclude={"arms", "guardrails"})
    arms = [a.model_dump(exclude_none=True) for a in body.arms]
    return service.create_experiment(arms=arms, guardrails=body.guardrails.model_dump(), **spec)


@router.get(
    "",
    dependencies=[require_read],
    summary="Every experiment, newest first",
    responses=error_responses(401, 403),
)
def list_experiments(service: ServiceDep) -> dict[str, Any]:
    return {"experiments": service.experiments()}


@router.get(
    "/{experiment_id}",
    dependencies=[require_read],
    summary="One experiment: its arms' counts and the verdict now",
    responses=error_responses(401, 403, 404, 422),
)
def get_experiment(experiment_id: ExperimentId, service: ServiceDep) -> dict[str, Any]:
    """A running experiment is looked at now (and may end, with `auto`): the always-valid
    p-value may be read at any time without inflating false positives."""
    return service.experiment(experiment_id)


@router.post(
    "/{experiment_id}/stop",
    dependencies=[require_write],
    summary="End a running experiment; the champion stays",
    responses=error_responses(401, 403, 404, 409, 422),
)
def stop_experiment(experiment_id: ExperimentId, service: ServiceDep) -> dict[str, Any]:
    """A 409 when it has ended already."""
    return service.stop_experiment(experiment_id)
