"""Training-job lifecycle: create and start, read, list, cancel, and the terminal states."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.config import settings
from chalicelib.errors import BadRequest, Conflict, NotFound, Unavailable
from chalicelib.minions import get_minion, prune_index_versions, restore_previous_index
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
MAX_ERROR_MESSAGE = 1000


def execution_name(job_id: int) -> str:
    return f"training-job-{job_id}"


def job_id_from_execution(execution_arn: str) -> int | None:
    name = execution_arn.rsplit(":", 1)[-1]
    prefix = execution_name(0)[:-1]
    return int(name[len(prefix) :]) if name.startswith(prefix) else None


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
    try:
        job = TrainingJob.get(job_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"training job {job_id} does not exist") from None
    if job.owner != owner:
        raise NotFound(f"training job {job_id} does not exist")
    return job


def _fingerprint(minion_id: str, dataset: str, options: Mapping[str, Any]) -> str:
    body = json.dumps([minion_id, dataset, options], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def _remember_idempotency_key(owner: str, key: str, job_id: int, fingerprint: str) -> int | None:
    """Bind ``key`` to ``job_id``; returns the job a previous request bound it to, if any."""
    name = f"idempotency-key:{owner}:{key}"
    record = Counter(name=name, value=job_id, fingerprint=fingerprint)
    try:
        record.save(condition=Counter.name.does_not_exist())
        return None
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
    existing = Counter.get(name, consistent_read=True)
    if existing.fingerprint != fingerprint:
        raise Conflict(f"Idempotency-Key {key!r} was already used for a different training request")
    return int(existing.value)


def create_job(
    owner: str,
    minion_id: str,
    dataset: str,
    options: Mapping[str, Any],
    idempotency_key: str | None = None,
) -> tuple[TrainingJob, bool]:
    """Create a job, claim the minion and start the execution; (job, created)."""
    minion = get_minion(minion_id, owner)
    job_id = next_job_id()
    if idempotency_key:
        fingerprint = _fingerprint(minion_id, dataset, options)
        earlier = _remember_idempotency_key(owner, idempotency_key, job_id, fingerprint)
        if earlier is not None:
            return get_job(earlier, owner), False
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
    try:
        with TransactWrite(connection=Connection(region=settings().region)) as transaction:
            transaction.update(
                minion,
                actions=[Minion.active_job_id.set(job_id), Minion.updated_at.set(utc_now())],
                condition=Minion.active_job_id.does_not_exist(),
            )
            transaction.save(job, condition=TrainingJob.id.does_not_exist())
    except TransactWriteError:
        busy = Minion.get(minion.id, consistent_read=True).active_job_id
        raise Conflict(
            f"minion {minion.id!r} already has a training in progress (job {busy})"
        ) from None
    _start_execution(job)
    return job, True


def _start_execution(job: TrainingJob) -> None:
    try:
        _sfn().start_execution(
            stateMachineArn=settings().state_machine_arn,
            name=execution_name(job.id),
            input=json.dumps({"job_id": job.id}),
        )
    except (ClientError, BotoCoreError) as exc:
        log.exception("job %s: could not start its execution", job.id)
        _end_job(
            job,
            FAILED,
            [TrainingJob.error.set(ErrorInfo(type="StartExecutionFailed", message=str(exc)))],
        )
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
    start_key = _decode_token(next_token) if next_token else None
    results = TrainingJob.by_minion.query(
        minion_id,
        scan_index_forward=False,
        filter_condition=(TrainingJob.status == status) if status else None,
        limit=limit,
        last_evaluated_key=start_key,
        page_size=limit,
    )
    jobs = list(results)
    last = results.last_evaluated_key
    return jobs, _encode_token(last) if last else None


def _encode_token(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_token(token: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise BadRequest("next_token is not a token this API handed out") from None
    if not isinstance(key, dict):
        raise BadRequest("next_token is not a token this API handed out")
    return key


def cancel_job(job_id: int, owner: str) -> TrainingJob:
    """Mark the job CANCELLED and stop its execution; cancelling twice is not an error.

    The knowledge base is put back by ``on_execution_end`` (the execution's ABORTED event), in
    the step image: the API package carries no knowledge-base client.
    """
    job = get_job(job_id, owner)
    if job.status == CANCELLED:
        return job
    if job.status not in ACTIVE_STATUSES:
        raise Conflict(f"training job {job_id} already ended with status {job.status}")
    if not _end_job(job, CANCELLED, [], message="cancelled", restore=False):
        return cancel_job(job_id, owner)
    try:
        _sfn().stop_execution(executionArn=job.execution_arn, cause="cancelled through the API")
    except ClientError as exc:
        log.warning("job %s: stop_execution failed: %s", job_id, exc)
    return get_job(job_id, owner)


def mark_succeeded(job_id: int, execution_arn: str) -> None:
    job = TrainingJob.get(job_id, consistent_read=True)
    _end_job(job, SUCCEEDED, [TrainingJob.progress.set(100)], execution_arn=execution_arn)


def mark_failed(job_id: int, execution_arn: str, error_type: str, message: str) -> None:
    """The failing step is the one marked running; progress stays where it was."""
    job = TrainingJob.get(job_id, consistent_read=True)
    step = STEPS[int(job.current_step)].name if job.current_step is not None else None
    error = ErrorInfo(step=step, type=error_type, message=message[:MAX_ERROR_MESSAGE])
    _end_job(
        job, FAILED, [TrainingJob.error.set(error)], execution_arn=execution_arn, message=message
    )


def _end_job(
    job: TrainingJob,
    status: str,
    actions: list[Any],
    execution_arn: str | None = None,
    message: str | None = None,
    restore: bool = True,
) -> bool:
    """Move a job to a terminal status, settle its step records, free the minion; a job that
    did not succeed gives the minion back its previous knowledge base (``restore``)."""
    actions = [*actions, TrainingJob.status.set(status)]
    for index, record in enumerate(job.steps):
        if record.status == STEP_RUNNING:
            final = STEP_FAILED if status == FAILED else STEP_SKIPPED
            actions.append(TrainingJob.steps[index].status.set(final))
            actions.append(TrainingJob.steps[index].finished_at.set(utc_now()))
            if message:
                actions.append(TrainingJob.steps[index].message.set(message[:MAX_ERROR_MESSAGE]))
        elif record.status == STEP_PENDING and status != SUCCEEDED:
            actions.append(TrainingJob.steps[index].status.set(STEP_SKIPPED))
    condition = TrainingJob.status.is_in(*ACTIVE_STATUSES)
    if execution_arn is not None:
        condition &= TrainingJob.execution_arn == execution_arn
    if status == SUCCEEDED:
        condition &= TrainingJob.status == RUNNING
    if conditional_update(job.id, actions, condition, f"move to {status}") is None:
        return False
    ended = TrainingJob.get(job.id, consistent_read=True)
    if status == SUCCEEDED:
        prune_index_versions(ended)
    elif restore:
        restore_previous_index(ended)
    _release_minion(ended)
    return True


def _release_minion(job: TrainingJob) -> None:
    minion = Minion(id=job.minion_id)
    actions = [Minion.active_job_id.remove(), Minion.updated_at.set(utc_now())]
    if job.status == SUCCEEDED:
        actions += [Minion.last_job_id.set(job.id)]
        if job.metrics_after is not None:
            actions.append(Minion.last_metrics.set(job.metrics_after.as_dict()))
    try:
        minion.update(actions=actions, condition=Minion.active_job_id == job.id)
    except UpdateError as exc:
        log.warning("job %s: minion %s not released: %s", job.id, job.minion_id, exc)


def on_execution_end(execution_arn: str, status: str, cause: str | None) -> None:
    """An execution ended without the state machine recording it (timeout, console stop)."""
    job_id = job_id_from_execution(execution_arn)
    if job_id is None:
        log.warning("execution %s is not a training job's", execution_arn)
        return
    try:
        job = TrainingJob.get(job_id, consistent_read=True)
    except DoesNotExist:
        log.warning("execution %s names job %s, which does not exist", execution_arn, job_id)
        return
    if status == "ABORTED":
        if job.status == CANCELLED:
            restore_previous_index(job)
        else:
            _end_job(job, CANCELLED, [], execution_arn=execution_arn, message="execution stopped")
    else:
        error_type = "States.Timeout" if status == "TIMED_OUT" else "States.ExecutionFailed"
        mark_failed(job_id, execution_arn, error_type, cause or f"the execution ended {status}")
