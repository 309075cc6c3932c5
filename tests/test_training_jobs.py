"""Training jobs end to end on moto: the real definition, the API, progress as the card sees it.

The steps' own work is replaced by stand-ins here (the RAG engine has its own tests, and one
real end-to-end run lives in test_local_service.py), so every path is quick and deterministic.
"""

from __future__ import annotations

import importlib
import json
import threading
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import training
from chalicelib.models import Minion, TrainingJob
from chalicelib.runner import StepContext, StepOutcome
from chalicelib.steps import STEPS, card_active_step
from tests.conftest import wait_for_end


class StandInWork:
    """Replaces the nine steps' work; records what a poller would see when each step runs."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.fail_at: str | None = None
        self.block_at: str | None = None
        self.blocked = threading.Event()
        self.release = threading.Event()

    def __call__(self, ctx: StepContext) -> StepOutcome:
        job = TrainingJob.get(ctx.job.id, consistent_read=True)
        self.seen.append(
            {
                "step": ctx.step.name,
                "progress": job.progress,
                "status": job.status,
                "statuses": [record.status for record in job.steps],
            }
        )
        ctx.report(0.5, items=1)
        if ctx.step.name == self.block_at:
            self.blocked.set()
            assert self.release.wait(30)
        if ctx.step.name == self.fail_at:
            raise ValueError(f"injected failure in {ctx.step.name}")
        return StepOutcome(f"{ctx.step.name} done", {"items": 2})


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> StandInWork:
    stand_in = StandInWork()
    for step in STEPS:
        monkeypatch.setattr(training, step.handler, stand_in)
    monkeypatch.setattr("chalicelib.jobs.restore_previous_index", lambda job: None)
    monkeypatch.setattr("chalicelib.jobs.prune_index_versions", lambda job: [])
    return stand_in


@pytest.fixture
def client(local_service: str) -> Client:
    import app

    with Client(app.app) as test_client:
        yield test_client


def post(client: Client, path: str, body: Any, **headers: str) -> Any:
    return client.http.post(
        path,
        body=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
    )


def new_minion(client: Client) -> str:
    response = post(client, "/api/v2/minions", {"name": "helper"})
    assert response.status_code == 201
    return response.json_body["id"]


def start(client: Client, minion_id: str, **headers: str) -> Any:
    body = {"minion_id": minion_id, "dataset": "s3://minion-datasets/uploads/local/x/"}
    return post(client, "/api/v2/training-jobs", body, **headers)


def get_job(client: Client, job_id: int) -> dict[str, Any]:
    response = client.http.get(f"/api/v2/training-jobs/{job_id}")
    assert response.status_code == 200
    return response.json_body


def test_a_job_runs_the_nine_states_and_the_card_follows(client, work):
    minion_id = new_minion(client)
    response = start(client, minion_id)
    assert response.status_code == 202
    job = response.json_body
    assert response.headers["Location"] == f"/api/v2/training-jobs/{job['id']}"
    assert job["status"] == "QUEUED"
    assert job["progress"] == 0
    wait_for_end(job["id"])

    assert [seen["step"] for seen in work.seen] == [step.name for step in STEPS]
    for index, seen in enumerate(work.seen):
        assert seen["status"] == "RUNNING"
        assert seen["progress"] == STEPS[index].start
        assert card_active_step(seen["progress"]) == index
        assert seen["statuses"][:index] == ["succeeded"] * index
        assert seen["statuses"][index] == "running"
        assert seen["statuses"][index + 1 :] == ["pending"] * (8 - index)
    progress = [seen["progress"] for seen in work.seen]
    assert progress == sorted(progress) and progress[0] == 0

    final = get_job(client, job["id"])
    assert final["status"] == "SUCCEEDED"
    assert final["progress"] == 100
    assert card_active_step(final["progress"]) == 9
    assert [step["status"] for step in final["steps"]] == ["succeeded"] * 9
    assert all(step["started_at"] <= step["finished_at"] for step in final["steps"])
    assert final["steps"][3]["counters"] == {"items": 2}
    assert final["steps"][3]["message"] == "Embedding Creation done"
    assert {"id", "minion_id", "status", "progress", "created_at", "updated_at"} <= set(final)
    minion = client.http.get(f"/api/v2/minions/{minion_id}").json_body
    assert minion["active_job_id"] is None
    assert minion["last_job_id"] == job["id"]


@pytest.mark.parametrize("failing", STEPS, ids=lambda s: s.name)
def test_a_failed_step_shows_failed_at_that_step_with_progress_kept(client, work, failing):
    work.fail_at = failing.name
    minion_id = new_minion(client)
    job_id = start(client, minion_id).json_body["id"]
    wait_for_end(job_id)

    job = get_job(client, job_id)
    assert job["status"] == "FAILED"
    assert job["error"] == {
        "step": failing.name,
        "type": "ValueError",
        "message": f"injected failure in {failing.name}",
    }
    statuses = [step["status"] for step in job["steps"]]
    assert statuses == (
        ["succeeded"] * failing.index + ["failed"] + ["skipped"] * (8 - failing.index)
    )
    assert job["steps"][failing.index]["message"] == f"injected failure in {failing.name}"
    assert failing.start <= job["progress"] < failing.end
    assert card_active_step(job["progress"]) == failing.index
    assert job["current_step"] == {"index": failing.index, "name": failing.name}
    assert Minion.get(minion_id).active_job_id is None


def test_cancel_mid_run_stops_the_execution(client, work):
    work.block_at = "Embedding Creation"
    minion_id = new_minion(client)
    job_id = start(client, minion_id).json_body["id"]
    assert work.blocked.wait(30)

    response = client.http.post(f"/api/v2/training-jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json_body["status"] == "CANCELLED"
    work.release.set()
    wait_for_end(job_id)

    job = get_job(client, job_id)
    assert job["status"] == "CANCELLED"
    assert [seen["step"] for seen in work.seen] == [step.name for step in STEPS[:4]]
    statuses = [step["status"] for step in job["steps"]]
    assert statuses == ["succeeded"] * 3 + ["skipped"] * 6
    assert STEPS[3].start <= job["progress"] < STEPS[3].end
    again = client.http.post(f"/api/v2/training-jobs/{job_id}/cancel")
    assert again.status_code == 200 and again.json_body["status"] == "CANCELLED"
    assert Minion.get(minion_id).active_job_id is None


def test_cancel_of_a_finished_job_is_refused(client, work):
    job_id = start(client, new_minion(client)).json_body["id"]
    wait_for_end(job_id)
    response = client.http.post(f"/api/v2/training-jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert "SUCCEEDED" in response.json_body["error"]["message"]


def test_a_retried_post_with_the_same_idempotency_key_returns_the_same_job(client, work):
    minion_id = new_minion(client)
    first = start(client, minion_id, **{"Idempotency-Key": "abc-1"})
    second = start(client, minion_id, **{"Idempotency-Key": "abc-1"})
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json_body["id"] == first.json_body["id"]
    wait_for_end(first.json_body["id"])
    other = post(
        client,
        "/api/v2/training-jobs",
        {"minion_id": minion_id, "dataset": "s3://minion-datasets/uploads/local/other/"},
        **{"Idempotency-Key": "abc-1"},
    )
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json_body["error"]["message"]


def test_a_key_refused_for_a_busy_minion_is_not_spent(client, work):
    work.block_at = "Capture Before Metrics"
    minion_id = new_minion(client)
    first = start(client, minion_id).json_body["id"]
    assert work.blocked.wait(30)
    refused = start(client, minion_id, **{"Idempotency-Key": "retry-me"})
    assert refused.status_code == 409
    work.release.set()
    wait_for_end(first)
    accepted = start(client, minion_id, **{"Idempotency-Key": "retry-me"})
    assert accepted.status_code == 202
    assert accepted.json_body["id"] != first
    wait_for_end(accepted.json_body["id"])


def test_a_second_job_for_a_busy_minion_is_refused(client, work):
    work.block_at = "Capture Before Metrics"
    minion_id = new_minion(client)
    first = start(client, minion_id).json_body["id"]
    assert work.blocked.wait(30)
    second = start(client, minion_id)
    assert second.status_code == 409
    assert second.json_body["error"]["code"] == "conflict"
    assert f"job {first}" in second.json_body["error"]["message"]
    work.release.set()
    wait_for_end(first)
    assert start(client, minion_id).status_code == 202


def test_progress_writes_from_a_stale_execution_are_ignored(client, work):
    from chalicelib import step_lambdas
    from chalicelib.progress import FractionReporter, JobNotRunning

    job_id = start(client, new_minion(client)).json_body["id"]
    wait_for_end(job_id)
    before = get_job(client, job_id)
    stale = "arn:aws:states:us-east-1:123456789012:execution:minion-training:old"
    result = step_lambdas.create_embeddings({"job_id": job_id, "execution_arn": stale})
    assert result["skipped"] is True
    with pytest.raises(JobNotRunning):
        FractionReporter(job_id, STEPS[8], stale, 0.0)(0.9)
    after = get_job(client, job_id)
    assert after["progress"] == before["progress"] == 100
    assert after["steps"] == before["steps"]
    assert len(work.seen) == 9


def test_status_survives_a_restart_of_the_api_process(client, work):
    import app

    job_id = start(client, new_minion(client)).json_body["id"]
    wait_for_end(job_id)
    before = get_job(client, job_id)
    importlib.reload(app)
    with Client(app.app) as restarted:
        assert get_job(restarted, job_id) == before


def test_etag_makes_an_unchanged_poll_a_304(client, work):
    job_id = start(client, new_minion(client)).json_body["id"]
    wait_for_end(job_id)
    first = client.http.get(f"/api/v2/training-jobs/{job_id}")
    tag = first.headers["ETag"]
    again = client.http.get(f"/api/v2/training-jobs/{job_id}", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.body == b""
    stale = client.http.get(f"/api/v2/training-jobs/{job_id}", headers={"If-None-Match": '"x"'})
    assert stale.status_code == 200


def test_jobs_are_listed_newest_first_page_by_page(client, work):
    minion_id = new_minion(client)
    ids = []
    for _ in range(3):
        job_id = start(client, minion_id).json_body["id"]
        wait_for_end(job_id)
        ids.append(job_id)
    page = client.http.get(f"/api/v2/training-jobs?minion_id={minion_id}&limit=2").json_body
    assert [job["id"] for job in page["items"]] == ids[::-1][:2]
    assert page["next_token"]
    rest = client.http.get(
        f"/api/v2/training-jobs?minion_id={minion_id}&limit=2&next_token={page['next_token']}"
    ).json_body
    assert [job["id"] for job in rest["items"]] == ids[:1]
    done = client.http.get(f"/api/v2/training-jobs?minion_id={minion_id}&status=FAILED")
    assert done.json_body["items"] == []


def test_an_end_event_for_an_unknown_execution_is_ignored(local_service):
    from chalicelib.step_lambdas import on_execution_end

    prefix = "arn:aws:states:us-east-1:123456789012:execution:minion-training:"
    for name in ("training-job-999", "someone-elses"):
        event = {"detail": {"executionArn": prefix + name, "status": "ABORTED"}}
        assert on_execution_end(event)["execution"] == prefix + name
