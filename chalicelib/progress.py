"""Conditional writes to a job item: the only code that moves progress or step records.

Every write is one UpdateItem whose condition says the job is still running, the caller is the
execution that owns it, and progress only moves forward. A write whose condition fails is logged
and dropped: a stale or cancelled execution must never fail, or overwrite, a live job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.models import (
    ACTIVE_STATUSES,
    RUNNING,
    STEP_RUNNING,
    STEP_SUCCEEDED,
    TrainingJob,
    utc_now,
)
from chalicelib.steps import Step

log = logging.getLogger(__name__)

MIN_SECONDS_BETWEEN_FRACTION_WRITES = 1.0


def conditional_update(
    job_id: int,
    actions: list[Action],
    condition: Condition,
    what: str,
) -> TrainingJob | None:
    """Apply ``actions`` if ``condition`` holds; None (logged) when it does not."""
    job = TrainingJob(id=job_id)
    try:
        job.update(actions=[*actions, TrainingJob.updated_at.set(utc_now())], condition=condition)
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            log.info("job %s: %s ignored, its condition no longer holds", job_id, what)
            return None
        raise
    return job


def owned_by(execution_arn: str, *statuses: str) -> Condition:
    return (TrainingJob.execution_arn == execution_arn) & TrainingJob.status.is_in(
        *(statuses or (RUNNING,))
    )


def _forward(progress: float) -> Condition:
    return TrainingJob.progress <= progress


def start_step(job: TrainingJob, step: Step, execution_arn: str) -> TrainingJob | None:
    """Mark ``step`` running and the job RUNNING; progress moves to the step's start."""
    progress = max(float(job.progress or 0), step.start)
    return conditional_update(
        job.id,
        [
            TrainingJob.status.set(RUNNING),
            TrainingJob.current_step.set(step.index),
            TrainingJob.progress.set(progress),
            TrainingJob.steps[step.index].status.set(STEP_RUNNING),
            TrainingJob.steps[step.index].started_at.set(utc_now()),
            TrainingJob.steps[step.index].finished_at.remove(),
        ],
        owned_by(execution_arn, *ACTIVE_STATUSES) & _forward(progress),
        f"start of {step.name!r}",
    )


def finish_step(
    job_id: int,
    step: Step,
    execution_arn: str,
    message: str,
    counters: Mapping[str, int | float],
    fields: Mapping[str, Any],
) -> TrainingJob | None:
    """Mark ``step`` succeeded, store what it produced, and advance progress to its end."""
    actions = [
        TrainingJob.progress.set(step.end),
        TrainingJob.steps[step.index].status.set(STEP_SUCCEEDED),
        TrainingJob.steps[step.index].finished_at.set(utc_now()),
        TrainingJob.steps[step.index].message.set(message),
        TrainingJob.steps[step.index].counters.set(dict(counters)),
    ]
    actions += [getattr(TrainingJob, name).set(value) for name, value in fields.items()]
    return conditional_update(
        job_id,
        actions,
        owned_by(execution_arn) & _forward(step.end),
        f"end of {step.name!r}",
    )


class FractionReporter:
    """Turns a step's "fraction done" into throttled progress writes inside the step's band."""

    def __init__(
        self,
        job_id: int,
        step: Step,
        execution_arn: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.step = step
        self.execution_arn = execution_arn
        self.clock = clock
        self.counters: dict[str, int | float] = {}
        self._last_write = float("-inf")
        self._last_progress = step.start

    def __call__(self, fraction: float, **counters: int | float) -> None:
        self.counters.update(counters)
        progress = self.step.progress_at(fraction)
        now = self.clock()
        if progress <= self._last_progress:
            return
        if now - self._last_write < MIN_SECONDS_BETWEEN_FRACTION_WRITES:
            return
        self._last_write = now
        self._last_progress = progress
        conditional_update(
            self.job_id,
            [
                TrainingJob.progress.set(progress),
                TrainingJob.steps[self.step.index].counters.set(dict(self.counters)),
            ],
            owned_by(self.execution_arn)
            & _forward(progress)
            & (TrainingJob.current_step == self.step.index),
            f"progress {progress} in {self.step.name!r}",
        )
