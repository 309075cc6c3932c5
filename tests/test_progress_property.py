"""Any interleaving of progress writes, from the owner and from others, keeps the job sane."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.models import CANCELLED, RUNNING, TrainingJob, create_tables
from chalicelib.progress import (
    FractionReporter,
    JobNotRunning,
    conditional_update,
    finish_step,
    start_step,
)
from chalicelib.steps import STEPS, boundary

OWNER = "arn:aws:states:us-east-1:123456789012:execution:m:owner"
STALE = ("arn:aws:states:us-east-1:123456789012:execution:m:old", "arn:other")


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[None]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_tables()
        yield


def new_job(job_id: int) -> None:
    """A job just created by the API: QUEUED, owned by OWNER, every step pending."""
    TrainingJob(
        id=job_id,
        minion_id="m",
        owner="o",
        dataset="s3://b/k",
        execution_arn=OWNER,
        status="QUEUED",
        steps=TrainingJob.fresh_steps(),
    ).save()


def owner_script(steps_done: int, fractions: list[float]) -> list[tuple]:
    """What the owning execution writes, in order: start, fractions, finish per step."""
    script: list[tuple] = []
    for step in STEPS[:steps_done]:
        script.append(("start", OWNER, step.index))
        script += [("fraction", OWNER, step.index, fraction) for fraction in fractions]
        script.append(("finish", OWNER, step.index))
    return script


owner_redelivery = st.tuples(st.just("start"), st.just(OWNER), st.integers(0, 8))
"""A retried, late or early start from the owner itself (Lambda retries, slow deliveries)."""

stale_write = st.one_of(
    owner_redelivery,
    st.tuples(st.just("start"), st.sampled_from(STALE), st.integers(0, 8)),
    st.tuples(st.just("finish"), st.sampled_from(STALE), st.integers(0, 8)),
    st.tuples(st.just("fraction"), st.sampled_from(STALE), st.integers(0, 8), st.floats(0, 1)),
    st.tuples(st.just("cancel")),
)


@st.composite
def interleavings(draw: st.DrawFn) -> list[tuple]:
    script = owner_script(draw(st.integers(0, 9)), draw(st.lists(st.floats(0, 1), max_size=3)))
    for other in draw(st.lists(stale_write, max_size=12)):
        script.insert(draw(st.integers(0, len(script))), other)
    return script


def apply(job_id: int, write: tuple) -> None:
    kind = write[0]
    if kind == "cancel":
        conditional_update(
            job_id,
            [TrainingJob.status.set(CANCELLED)],
            TrainingJob.status.is_in("QUEUED", RUNNING),
            "cancel",
        )
        return
    arn, step = write[1], STEPS[write[2]]
    if kind == "start":
        start_step(job_id, step, arn)
    elif kind == "finish":
        finish_step(job_id, step, arn, "done", {"n": 1}, {})
    else:
        try:
            progress = TrainingJob.get(job_id, consistent_read=True).progress
            FractionReporter(job_id, step, arn, progress, clock=lambda: 1e9)(write[3])
        except JobNotRunning:
            assert arn != OWNER or job_not_running_for_owner(job_id, step)


def job_not_running_for_owner(job_id: int, step: object) -> bool:
    """The owner's fraction write may only be refused when that step is not the running one."""
    job = TrainingJob.get(job_id, consistent_read=True)
    return (
        job.status != RUNNING
        or job.current_step != step.index
        or (job.steps[step.index].status != "running")
    )


def check(job: TrainingJob) -> None:
    statuses = [record.status for record in job.steps]
    done = statuses.count("succeeded")
    assert statuses[:done] == ["succeeded"] * done, statuses
    assert set(statuses[done:]) <= {"pending", "running"}, statuses
    assert 0 <= job.progress <= 100
    assert job.progress >= boundary(done)
    running = [i for i, status in enumerate(statuses) if status == "running"]
    assert len(running) <= 1
    if running:
        assert running[0] == done
        assert job.progress < STEPS[done].end
    elif done < 9:
        assert job.progress == boundary(done)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=interleavings(), job_id=st.integers(1, 2**40))
def test_any_interleaving_keeps_progress_monotonic_bounded_and_consistent(dynamodb, script, job_id):
    new_job(job_id)
    seen = [0.0]
    for write in script:
        apply(job_id, write)
        job = TrainingJob.get(job_id, consistent_read=True)
        assert job.progress >= seen[-1]
        seen.append(job.progress)
        check(job)
    TrainingJob(id=job_id).delete()


def test_a_retried_step_runs_again_and_finishes(dynamodb):
    """A Lambda retry of a step that had reported progress must not be taken for a stale run."""
    new_job(7)
    step = STEPS[0]
    first = start_step(7, step, OWNER)
    FractionReporter(7, step, OWNER, first.progress, clock=lambda: 1e9)(0.8)
    retry = start_step(7, step, OWNER)
    assert retry is not None and retry.progress == step.progress_at(0.8)
    FractionReporter(7, step, OWNER, retry.progress, clock=lambda: 1e9)(0.0)
    assert finish_step(7, step, OWNER, "done", {}, {}) is not None
    job = TrainingJob.get(7, consistent_read=True)
    assert job.progress == step.end
    assert job.steps[0].status == "succeeded"
    assert start_step(7, step, OWNER) is None
