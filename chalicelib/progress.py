"""Conditional writes to a job item: the only code that moves progress or step records.

Every write is one UpdateItem whose condition says the job is still running, the caller is the
execution that owns it, progress only moves forward, and steps only move on in order (a retried
or late start can never mark a finished step running again). A write whose condition fails is
logged and dropped: a stale or cancelled execution must never fail, or overwrite, a live job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pynamodb.exceptions import PynamoDBException, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.models import (
    ACTIVE_STATUSES,
    RUNNING,
    STEP_PENDING,
    STEP_RUNNING,
    STEP_SUCCEEDED,
    TrainingJob,
    utc_now,
)
from chalicelib.steps import Step

log = logging.getLogger(__name__)

MIN_SECONDS_BETWEEN_FRACTION_WRITES = 1.0


class JobNotRunning(Exception):
    """The job is no longer this execution's to change (cancelled, failed, or taken over)."""


def conditional_update(
    job_id: int,
    actions: list[Action],
    condition: Condition,
    what: str,
) -> TrainingJob | None:
    """Apply ``actions`` if ``condition`` holds and return the updated job; None (logged) if not."""
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
    """The job is in one of ``statuses`` (RUNNING by default) under this execution."""
    return (TrainingJob.execution_arn == execution_arn) & TrainingJob.status.is_in(
        *(statuses or (RUNNING,))
    )


def set_fields(fields: Mapping[str, Any]) -> list[Action]:
    """Update actions for job attributes by name; None removes the attribute."""
    return [
        getattr(TrainingJob, name).set(value)
        if value is not None
        else getattr(TrainingJob, name).remove()
        for name, value in fields.items()
    ]


def record_fields(job_id: int, execution_arn: str, fields: Mapping[str, Any]) -> bool:
    """Store step results before the step ends (e.g. what to undo if it dies)."""
    written = conditional_update(job_id, set_fields(fields), owned_by(execution_arn), "record")
    return written is not None


def start_step(job_id: int, step: Step, execution_arn: str) -> TrainingJob | None:
    """Mark ``step`` running and the job RUNNING; progress moves up to the step's start.

    Allowed only for the step after the last one that succeeded, or again for the running step
    (a Lambda retry); a late or duplicated start of any other step is dropped.
    """
    job = TrainingJob.get(job_id, consistent_read=True)
    progress = max(float(job.progress or 0), step.start)
    record = TrainingJob.steps[step.index]
    in_order = (
        TrainingJob.current_step.does_not_exist() | (TrainingJob.current_step < step.index)
    ) & (record.status == STEP_PENDING)
    if step.index > 0:
        in_order &= TrainingJob.steps[step.index - 1].status == STEP_SUCCEEDED
    retried = (TrainingJob.current_step == step.index) & (record.status == STEP_RUNNING)
    return conditional_update(
        job_id,
        [
            TrainingJob.status.set(RUNNING),
            TrainingJob.current_step.set(step.index),
            TrainingJob.progress.set(progress),
            record.status.set(STEP_RUNNING),
            record.started_at.set(utc_now()),
        ],
        owned_by(execution_arn, *ACTIVE_STATUSES)
        & (TrainingJob.progress <= progress)
        & (in_order | retried),
        f"start of {step.name!r}",
    )


def _running(step: Step) -> Condition:
    return (TrainingJob.current_step == step.index) & (
        TrainingJob.steps[step.index].status == STEP_RUNNING
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
    record = TrainingJob.steps[step.index]
    actions = [
        TrainingJob.progress.set(step.end),
        record.status.set(STEP_SUCCEEDED),
        record.finished_at.set(utc_now()),
        record.message.set(message),
        record.counters.set(dict(counters)),
        *set_fields(fields),
    ]
    return conditional_update(
        job_id,
        actions,
        owned_by(execution_arn) & (TrainingJob.progress <= step.end) & _running(step),
        f"end of {step.name!r}",
    )


class FractionReporter:
    """Turns a step's "fraction done" into throttled progress writes inside the step's band.

    Raises JobNotRunning once a write finds the job is no longer this execution's, so a long
    step stops working for a cancelled job instead of going on for minutes.
    """

    def __init__(
        self,
        job_id: int,
        step: Step,
        execution_arn: str,
        progress: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``progress`` is the job's progress when the step started (a retried step may find
        it inside the band already): nothing below it is written."""
        self.job_id = job_id
        self.step = step
        self.execution_arn = execution_arn
        self.clock = clock
        self.counters: dict[str, int | float] = {}
        self._last_write = float("-inf")
        self._last_progress = progress

    def __call__(self, fraction: float, **counters: int | float) -> None:
        self.counters.update(counters)
        progress = max(self.step.progress_at(fraction), self._last_progress)
        now = self.clock()
        if now - self._last_write < MIN_SECONDS_BETWEEN_FRACTION_WRITES:
            return
        self._last_write = now
        self._last_progress = progress
        try:
            written = conditional_update(
                self.job_id,
                [
                    TrainingJob.progress.set(progress),
                    TrainingJob.steps[self.step.index].counters.set(dict(self.counters)),
                ],
                owned_by(self.execution_arn)
                & (TrainingJob.progress <= progress)
                & _running(self.step),
                f"progress {progress} in {self.step.name!r}",
            )
        except PynamoDBException as exc:
            log.warning("job %s: progress write failed, the step goes on: %s", self.job_id, exc)
            return
        if written is None:
            raise JobNotRunning(f"job {self.job_id} is no longer run by {self.execution_arn}")
