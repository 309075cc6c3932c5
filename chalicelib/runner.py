"""The one step runner: every step's bookkeeping, so a step's own code only does its work."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.models import TrainingJob
from chalicelib.progress import (
    FractionReporter,
    JobNotRunning,
    finish_step,
    record_fields,
    start_step,
)
from chalicelib.steps import Step

log = logging.getLogger(__name__)


@dataclass
class StepOutcome:
    """What a step produced: a short message for the card, counters, and job fields to store."""

    message: str
    counters: Mapping[str, int | float] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """What a step's work gets: the job as it was when the step started, and a progress hook."""

    job: TrainingJob
    step: Step
    report: FractionReporter
    execution_arn: str

    def record(self, **fields: Any) -> bool:
        """Store fields now, before the step ends (e.g. what to undo if it dies); False if the
        job is no longer this execution's to change."""
        return record_fields(self.job.id, self.execution_arn, fields)


StepWork = Callable[[StepContext], StepOutcome]


def run_step(step: Step, work: StepWork, event: Mapping[str, Any]) -> dict[str, Any]:
    """Mark the step running, do its work, record the outcome and advance progress.

    If the job is not, or stops being, this execution's to run (cancelled, or a newer
    execution owns it), the work is skipped or abandoned: a stale execution must not build
    indexes or move aliases. Other exceptions propagate, so the state machine's Catch records
    the failure.
    """
    job_id = int(event["job_id"])
    execution_arn = str(event["execution_arn"])
    skipped = {"job_id": job_id, "step": step.name, "skipped": True}
    job = start_step(job_id, step, execution_arn)
    if job is None:
        log.warning("job %s: %r skipped, not running under %s", job_id, step.name, execution_arn)
        return skipped
    reporter = FractionReporter(job_id, step, execution_arn, float(job.progress))
    try:
        outcome = work(StepContext(job, step, reporter, execution_arn))
    except JobNotRunning:
        log.warning("job %s: %r abandoned, the job stopped meanwhile", job_id, step.name)
        return skipped
    counters = {**reporter.counters, **outcome.counters}
    finish_step(job_id, step, execution_arn, outcome.message, counters, outcome.fields)
    return {"job_id": job_id, "step": step.name, "message": outcome.message}
