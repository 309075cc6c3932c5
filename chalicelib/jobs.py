"""Training-job lifecycle: create and start, read, list, cancel, and the terminal states."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.config import settings
from chalicelib.errors import BadRequest, Conflict, NotFound, Unavailable
from chalicelib.index_versions import prune_index_versions, restore_previous_index
from chalicelib.minions import get_minion
from chalicelib.models import (
    ACTIVE_STATUSES,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    STEP_FAILED,
    STEP_PENDING,
    STEP_RUNNING,
    STEP_SKIPPED,
    STEP_SUCCEEDED,
    SUCCEEDED,
    Counter,
    ErrorInfo,
    Minion,
    TrainingJob,
    utc_now,
)
from chalicelib.progress import conditional_update
from chalicelib.steps import STEPS

log = logging.getLogger(__name__)

JOB_SEQUENCE = "training-job-id"
EXECUTION_PREFIX = "training-job-"
EXECUTION_NAME = re.compile(rf":{EXECUTION_PREFIX}([0-9]{{1,16}})$")
MAX_ERROR_MESSAGE = 1000
CANCEL_ATTEMPTS = 5
CONDITION_FAILED = "ConditionalCheckFailed"


def execution_name(job_id: int) -> str:
    """Named from the job id, so a second StartExecution for one job cannot happen."""
    return f"{EXECUTION_PREFIX}{job_id}"


def job_id_from_execution(execution_arn: str) -> int | None:
    match = EXECUTION_NAME.search(execution_arn)
    return int(match.group(1)) if match else None


def execution_arn_for(job_id: int) -> str:
    """Execution ARNs are predictable, so the job names its owner before the execution starts."""
    machine = settings().state_machine_arn
    return f"{machine.replace(':stateMachine:', ':execution:')}:{execution_name(job_id)}"


def next_job_id() -> int:
    """Integer job ids from an atomic counter (the web card's route takes an int)."""
    counter = Counter(name=JOB_SEQUENCE)
    counter.update(actions=[Counter.value.add(1)])
    return int(counter.value)


def get_job(job_id: int, owner: str) -> TrainingJob:
    """A job of ``owner``'s; another owner's job is reported missing, not forbidden."""
    try:
        job = TrainingJob.get(job_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"training job {job_id} does not exist") from None
    if job.owner != owner:
        raise NotFound(f"training job {job_id} does not exist")
    return job


def uploads_prefix(owner: str) -> str:
    """Where an owner's datasets live: a job may only read its owner's uploads."""
    return f"s3://{settings().dataset_bucket}/uploads/{owner}/"


def _fingerprint(minion_id: str, dataset: str, options: Mapping[str, Any]) -> str:
    body = json.dumps([minion_id, dataset, options], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def create_job(
    owner: str,
    minion_id: str,
    dataset: str,
    options: Mapping[str, Any],
    idempotency_key: str | None = None,
) -> tuple[TrainingJob, bool]:
    """Create a job, claim the minion and start the execution; (job, created).

    The idempotency key, the minion's claim and the job are written in one transaction, so a
    key never names a job that does not exist, and a busy minion is refused atomically.
    """
    minion = get_minion(minion_id, owner)
    if not dataset.startswith(uploads_prefix(owner)):
        raise BadRequest(
            f"dataset must be one of your uploads, under {uploads_prefix(owner)}"
            " (POST /api/v2/dataset-uploads hands out upload URLs)"
        )
    job_id = next_job_id()
    job = TrainingJob(
        id=job_id,
        minion_id=minion.id,
        owner=owner,
        status=QUEUED,
        progress=0,
        steps=TrainingJob.fresh_steps(),
        dataset=dataset,
        options=dict(options),
        execution_arn=execution_arn_for(job_id),
    )
    fingerprint = _fingerprint(minion_id, dataset, options)
    key = f"idempotency-key:{owner}:{idempotency_key}" if idempotency_key else None
    try:
        with TransactWrite(connection=Connection(region=settings().region)) as transaction:
            if key:
                transaction.save(
                    Counter(name=key, value=job_id, fingerprint=fingerprint),
                    condition=Counter.name.does_not_exist(),
                )
            transaction.update(
                minion,
                actions=[Minion.active_job_id.set(job_id), Minion.updated_at.set(utc_now())],
                condition=Minion.active_job_id.does_not_exist(),
            )
            transaction.save(job, condition=TrainingJob.id.does_not_exist())
    except TransactWriteError as exc:
        reasons = [reason.code if reason else None for reason in exc.cancellation_reasons or []]
        if key and reasons[:1] == [CONDITION_FAILED]:
            return _replay(key, idempotency_key, fingerprint, owner), False
        if CONDITION_FAILED in reasons:
            busy = Minion.get(minion.id, consistent_read=True).active_job_id
            raise Conflict(
                f"minion {minion.id!r} already has a training in progress (job {busy})"
            ) from None
        raise
    _start_execution(job)
    return job, True


def _replay(key: str, idempotency_key: str, fingerprint: str, owner: str) -> TrainingJob:
    record = Counter.get(key, consistent_read=True)
    if record.fingerprint != fingerprint:
        raise Conflict(
            f"Idempotency-Key {idempotency_key!r} was already used for a different training"
        )
    return get_job(int(record.value), owner)


def _start_execution(job: TrainingJob) -> None:
    try:
        _sfn().start_execution(
            stateMachineArn=settings().state_machine_arn,
            name=execution_name(job.id),
            input=json.dumps({"job_id": job.id}),
        )
    except (ClientError, BotoCoreError) as exc:
        log.exception("job %s: could not start its execution", job.id)
        error = ErrorInfo(type="StartExecutionFailed", message=str(exc))
        ended = _end_job(job, FAILED, [TrainingJob.error.set(error)])
        if ended is not None:
            _release_minion(ended)
        raise Unavailable("the training could not be started; retry later") from exc


def _sfn() -> Any:
    return boto3.client("stepfunctions", region_name=settings().region)


def list_jobs(
    owner: str,
    minion_id: str,
    status: str | None,
    limit: int,
    next_token: str | None,
) -> tuple[list[TrainingJob], str | None]:
    """A minion's jobs, newest first, one page at a time."""
    get_minion(minion_id, owner)
    results = TrainingJob.by_minion.query(
        minion_id,
        scan_index_forward=False,
        filter_condition=(TrainingJob.status == status) if status else None,
        limit=limit,
        last_evaluated_key=_decode_token(next_token, minion_id) if next_token else None,
        page_size=limit,
    )
    jobs = list(results)
    last = results.last_evaluated_key
    return jobs, _encode_token(last) if last else None


def _encode_token(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


TOKEN_SHAPE = {"id": "N", "minion_id": "S", "created_at": "S"}


def _decode_token(token: str, minion_id: str) -> dict[str, Any]:
    """The key a previous page ended at, checked so a forged token cannot reach DynamoDB."""
    invalid = BadRequest("next_token is not a token this API handed out for this minion")
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise invalid from None
    if not isinstance(key, dict) or set(key) != set(TOKEN_SHAPE):
        raise invalid
    for name, kind in TOKEN_SHAPE.items():
        value = key[name]
        if not isinstance(value, dict) or set(value) != {kind} or not isinstance(value[kind], str):
            raise invalid
    if key["minion_id"]["S"] != minion_id or not re.fullmatch(r"[0-9]{1,16}", key["id"]["N"]):
        raise invalid
    return key


def cancel_job(job_id: int, owner: str) -> TrainingJob:
    """Mark the job CANCELLED and stop its execution; cancelling twice is not an error.

    The minion stays claimed until the step image has put its previous knowledge base back
    (``settle_ended_job``, reached through the execution's ABORTED event), so no new training
    can start on a half-undone minion. The API package carries no knowledge-base client.
    """
    for _ in range(CANCEL_ATTEMPTS):
        job = get_job(job_id, owner)
        if job.status == CANCELLED:
            return job
        if job.status not in ACTIVE_STATUSES:
            raise Conflict(f"training job {job_id} already ended with status {job.status}")
        ended = _end_job(job, CANCELLED, [], message="cancelled")
        if ended is not None:
            try:
                _sfn().stop_execution(executionArn=job.execution_arn, cause="cancelled")
            except ClientError as exc:
                log.warning("job %s: stop_execution failed: %s", job_id, exc)
            return get_job(job_id, owner)
    raise Unavailable(f"training job {job_id} kept changing; retry the cancel")


def failing_step(job: TrainingJob) -> int:
    """The step that was running; if none was (it failed before starting), the next one."""
    current = int(job.current_step) if job.current_step is not None else 0
    if job.steps[current].status == STEP_SUCCEEDED and current + 1 < len(STEPS):
        return current + 1
    return current


def mark_succeeded(job_id: int, execution_arn: str) -> None:
    job = TrainingJob.get(job_id, consistent_read=True)
    ended = _end_job(job, SUCCEEDED, [TrainingJob.progress.set(100)], execution_arn)
    settle_ended_job(ended or TrainingJob.get(job_id, consistent_read=True), execution_arn)


def mark_failed(job_id: int, execution_arn: str, error_type: str, message: str) -> None:
    """Failed at the step that was running, progress kept where it was."""
    job = TrainingJob.get(job_id, consistent_read=True)
    step = failing_step(job)
    error = ErrorInfo(step=STEPS[step].name, type=error_type, message=message[:MAX_ERROR_MESSAGE])
    ended = _end_job(
        job,
        FAILED,
        [TrainingJob.error.set(error)],
        execution_arn,
        message=message,
        failed_step=step,
    )
    settle_ended_job(ended or TrainingJob.get(job_id, consistent_read=True), execution_arn)


def on_execution_end(execution_arn: str, status: str, cause: str | None) -> None:
    """An execution ended FAILED, TIMED_OUT or ABORTED (a cancel, a timeout, a console stop)."""
    job_id = job_id_from_execution(execution_arn)
    try:
        job = TrainingJob.get(job_id, consistent_read=True) if job_id else None
    except DoesNotExist:
        job = None
    if job is None or job.execution_arn != execution_arn:
        log.warning("execution %s is not a training job's", execution_arn)
        return
    if job.status in ACTIVE_STATUSES:
        if status == "ABORTED":
            _end_job(job, CANCELLED, [], execution_arn, message="execution stopped")
        else:
            error_type = "States.Timeout" if status == "TIMED_OUT" else "States.ExecutionFailed"
            mark_failed(job_id, execution_arn, error_type, cause or f"the execution {status}")
        job = TrainingJob.get(job_id, consistent_read=True)
    settle_ended_job(job, execution_arn)


def settle_ended_job(job: TrainingJob, execution_arn: str) -> None:
    """After a job ended: tidy its knowledge base, then free the minion. Idempotent, so every
    path that may see the end (the state machine, EventBridge, a cancel) can call it."""
    if job.status in ACTIVE_STATUSES or job.execution_arn != execution_arn:
        return
    try:
        if job.status == SUCCEEDED:
            prune_index_versions(job)
        else:
            restore_previous_index(job)
    finally:
        _release_minion(job)


def _end_job(
    job: TrainingJob,
    status: str,
    actions: list[Any],
    execution_arn: str | None = None,
    message: str | None = None,
    failed_step: int | None = None,
) -> TrainingJob | None:
    """Move an active job to a terminal status and settle its step records, in one write
    that holds only if no step moved since ``job`` was read."""
    actions = [*actions, TrainingJob.status.set(status)]
    for index, record in enumerate(job.steps):
        if index == failed_step:
            final = STEP_FAILED
        elif record.status == STEP_RUNNING or (
            record.status == STEP_PENDING and status != SUCCEEDED
        ):
            final = STEP_SKIPPED
        else:
            continue
        actions += [
            TrainingJob.steps[index].status.set(final),
            TrainingJob.steps[index].finished_at.set(utc_now()),
        ]
        if message and (record.status == STEP_RUNNING or index == failed_step):
            actions.append(TrainingJob.steps[index].message.set(message[:MAX_ERROR_MESSAGE]))
    if status == SUCCEEDED:
        last = TrainingJob.steps[len(STEPS) - 1].status == STEP_SUCCEEDED
        condition = (TrainingJob.status == RUNNING) & last
    else:
        condition = TrainingJob.status.is_in(*ACTIVE_STATUSES)
    if job.current_step is None:
        condition &= TrainingJob.current_step.does_not_exist()
    else:
        condition &= TrainingJob.current_step == job.current_step
    if execution_arn is not None:
        condition &= TrainingJob.execution_arn == execution_arn
    return conditional_update(job.id, actions, condition, f"move to {status}")


def _release_minion(job: TrainingJob) -> None:
    """Free the minion if this job still holds it; record a success as its last training."""
    actions = [Minion.active_job_id.remove(), Minion.updated_at.set(utc_now())]
    if job.status == SUCCEEDED:
        actions.append(Minion.last_job_id.set(job.id))
        if job.metrics_after is not None:
            actions.append(Minion.last_metrics.set(job.metrics_after.as_dict()))
    try:
        Minion(id=job.minion_id).update(actions=actions, condition=Minion.active_job_id == job.id)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        log.info("job %s: minion %s was already released", job.id, job.minion_id)
