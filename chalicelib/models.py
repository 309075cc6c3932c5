"""DynamoDB items (pynamodb): training jobs, minions, and the counters table."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.config import settings
from chalicelib.steps import STEPS

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
)
ACTIVE_STATUSES = (QUEUED, RUNNING)
JOB_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
STEP_PENDING, STEP_RUNNING, STEP_SUCCEEDED, STEP_FAILED, STEP_SKIPPED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
)


def utc_now() -> str:
    """ISO-8601 with microseconds: sorts as text, so it can be a range key."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class StepRecord(MapAttribute):
    name = UnicodeAttribute()
    status = UnicodeAttribute(default=STEP_PENDING)
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    message = UnicodeAttribute(null=True)
    counters = MapAttribute(null=True)


class ErrorInfo(MapAttribute):
    step = UnicodeAttribute(null=True)
    type = UnicodeAttribute()
    message = UnicodeAttribute()


class MinionJobsIndex(GlobalSecondaryIndex):
    """A minion's jobs, newest first (query with scan_index_forward=False)."""

    class Meta:
        index_name = "minion-index"
        projection = AllProjection()

    minion_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class TrainingJob(Model):
    class Meta:
        table_name = settings().jobs_table
        region = settings().region

    id = NumberAttribute(hash_key=True)
    minion_id = UnicodeAttribute()
    owner = UnicodeAttribute()
    status = UnicodeAttribute(default=QUEUED)
    progress = NumberAttribute(default=0)
    current_step = NumberAttribute(null=True)
    steps = ListAttribute(of=StepRecord)
    execution_arn = UnicodeAttribute(null=True)
    error = ErrorInfo(null=True)
    dataset = UnicodeAttribute()
    options = MapAttribute(null=True)
    index_name = UnicodeAttribute(null=True)
    previous_index = UnicodeAttribute(null=True)
    refined_dataset = UnicodeAttribute(null=True)
    dataset_report = MapAttribute(null=True)
    metrics_before = MapAttribute(null=True)
    metrics_after = MapAttribute(null=True)
    improvements = MapAttribute(null=True)
    test_results = MapAttribute(null=True)
    created_at = UnicodeAttribute(default_for_new=utc_now)
    updated_at = UnicodeAttribute(default_for_new=utc_now)
    by_minion = MinionJobsIndex()

    @staticmethod
    def fresh_steps() -> list[StepRecord]:
        return [StepRecord(name=step.name) for step in STEPS]


class Minion(Model):
    class Meta:
        table_name = settings().minions_table
        region = settings().region

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    owner = UnicodeAttribute()
    kb_alias = UnicodeAttribute()
    active_job_id = NumberAttribute(null=True)
    last_job_id = NumberAttribute(null=True)
    last_metrics = MapAttribute(null=True)
    created_at = UnicodeAttribute(default_for_new=utc_now)
    updated_at = UnicodeAttribute(default_for_new=utc_now)


class Counter(Model):
    """Names mapped to integers: the job-id sequence and idempotency keys."""

    class Meta:
        table_name = settings().counters_table
        region = settings().region

    name = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)
    fingerprint = UnicodeAttribute(null=True)


def create_tables() -> None:
    """Create the tables on-demand (local service and tests; CDK owns them in AWS)."""
    for model in (TrainingJob, Minion, Counter):
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
