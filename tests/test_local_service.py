"""Real trainings on the local service: the RAG engine behind the real state machine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib import datasets, training
from chalicelib.datasets import Dataset
from tests.conftest import CISI, REPO, wait_for_end

BUCKET = "minion-datasets"


@pytest.fixture(scope="module")
def small_cisi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 judged CISI queries and 150 documents around them, as a JSONL dataset."""
    cisi = datasets.load_dataset(str(CISI))
    items = [item for item in cisi.eval_items if len(item.relevant_ids) <= 10][:10]
    wanted = {doc_id for item in items for doc_id in item.relevant_ids}
    docs = [doc for doc in cisi.documents if doc.id in wanted]
    docs += [doc for doc in cisi.documents if doc.id not in wanted][: 150 - len(docs)]
    folder = tmp_path_factory.mktemp("small-cisi")
    datasets.write_jsonl(Dataset(docs, items), folder)
    return folder


def upload(folder: Path, name: str) -> str:
    """The dataset as the local owner's upload (what the presigned URLs would produce)."""
    s3 = boto3.client("s3")
    for path in folder.iterdir():
        s3.upload_file(str(path), BUCKET, f"uploads/local/{name}/{path.name}")
    return f"s3://{BUCKET}/uploads/local/{name}/"


@pytest.fixture
def client(local_service: str) -> Client:
    import app

    with Client(app.app) as test_client:
        yield test_client


def call(client: Client, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body) if body is not None else None
    response = getattr(client.http, method)(
        path, body=data, headers={"Content-Type": "application/json"}
    )
    return response.status_code, response.json_body


def train(client: Client, minion_id: str, dataset: str) -> tuple[dict[str, Any], list[float]]:
    """Start a training and poll it as the web card does; returns the job and what was seen."""
    status, job = call(
        client, "post", "/api/v2/training-jobs", {"minion_id": minion_id, "dataset": dataset}
    )
    assert status == 202, job
    seen = []
    while job["status"] in ("QUEUED", "RUNNING"):
        time.sleep(0.2)
        job = call(client, "get", f"/api/v2/training-jobs/{job['id']}")[1]
        seen.append(job["progress"])
    wait_for_end(job["id"])
    return call(client, "get", f"/api/v2/training-jobs/{job['id']}")[1], seen


def test_a_minion_trains_on_real_data_and_answers(client, small_cisi):
    minion_id = call(client, "post", "/api/v2/minions", {"name": "librarian"})[1]["id"]
    job, seen = train(client, minion_id, upload(small_cisi, "cisi-small"))

    assert job["status"] == "SUCCEEDED", job["error"]
    assert seen == sorted(seen) and seen[-1] == 100
    assert len(set(seen)) > 3
    steps = {step["name"]: step for step in job["steps"]}
    assert steps["Dataset Loading & Refinement"]["counters"]["documents_kept"] == 150
    embedding = steps["Embedding Creation"]["counters"]
    assert embedding["chunks"] >= 150 and embedding["chunks_embedded"] == embedding["chunks"]
    assert steps["Training Validation"]["counters"]["chunks_indexed"] == embedding["chunks"]
    metrics = job["metrics"]
    assert metrics["before"]["ndcg_at_10"] == 0
    assert metrics["after"]["ndcg_at_10"] > 0.3
    assert metrics["after"]["queries"] == job["dataset_report"]["eval_kept"] >= 9
    assert metrics["improvements"]["ndcg_at_10"] == pytest.approx(
        metrics["after"]["ndcg_at_10"], abs=1e-4
    )
    assert set(metrics["tests"]) == {"dense", "bm25"}
    assert job["dataset_report"]["documents_kept"] == 150

    status, answer = call(
        client,
        "post",
        f"/api/v2/minions/{minion_id}/query",
        {"question": "library classification schemes", "k": 3, "mode": "hybrid"},
    )
    assert status == 200
    assert len(answer["hits"]) == 3
    assert answer["hits"][0]["passages"][0]["text"]
    minion = call(client, "get", f"/api/v2/minions/{minion_id}")[1]
    assert minion["last_metrics"]["ndcg_at_10"] == metrics["after"]["ndcg_at_10"]


def test_a_failure_after_minion_update_puts_the_previous_knowledge_base_back(
    client, small_cisi, monkeypatch
):
    from chalicelib.kb import get_knowledge_base

    dataset = upload(small_cisi, "cisi-small")
    minion_id = call(client, "post", "/api/v2/minions", {"name": "librarian"})[1]["id"]
    kb = get_knowledge_base()
    alias = f"minion-{minion_id}"
    first, _ = train(client, minion_id, dataset)
    second, _ = train(client, minion_id, dataset)
    assert first["status"] == second["status"] == "SUCCEEDED"
    assert kb.resolve_alias(alias) == f"{alias}-v{second['id']}"

    def broken_tests(ctx: Any) -> Any:
        assert kb.resolve_alias(alias) == f"{alias}-v{ctx.job.id}"
        raise RuntimeError("the test suite crashed")

    monkeypatch.setattr(training, "run_tests", broken_tests)
    third, _ = train(client, minion_id, dataset)

    assert third["status"] == "FAILED"
    assert third["error"]["step"] == "Testing"
    assert third["metrics"]["before"] == second["metrics"]["after"]
    assert kb.resolve_alias(alias) == f"{alias}-v{second['id']}"
    assert sorted(kb.list_indexes(f"{alias}-v")) == [
        f"{alias}-v{first['id']}",
        f"{alias}-v{second['id']}",
    ]
    status, answer = call(
        client, "post", f"/api/v2/minions/{minion_id}/query", {"question": "indexing"}
    )
    assert status == 200 and answer["hits"]


def test_cancel_after_minion_update_puts_the_previous_knowledge_base_back(
    client, small_cisi, monkeypatch
):
    from chalicelib.kb import get_knowledge_base

    dataset = upload(small_cisi, "cisi-small")
    minion_id = call(client, "post", "/api/v2/minions", {"name": "librarian"})[1]["id"]
    first, _ = train(client, minion_id, dataset)
    kb = get_knowledge_base()
    alias = f"minion-{minion_id}"
    reached, release = threading.Event(), threading.Event()

    def slow_tests(ctx: Any) -> Any:
        reached.set()
        release.wait(60)
        raise AssertionError("a cancelled job's step went on")

    monkeypatch.setattr(training, "run_tests", slow_tests)
    status, second = call(
        client, "post", "/api/v2/training-jobs", {"minion_id": minion_id, "dataset": dataset}
    )
    assert reached.wait(120)
    assert kb.resolve_alias(alias) == f"{alias}-v{second['id']}"
    status, cancelled = call(client, "post", f"/api/v2/training-jobs/{second['id']}/cancel")
    release.set()
    wait_for_end(second["id"])

    assert status == 200 and cancelled["status"] == "CANCELLED"
    assert kb.resolve_alias(alias) == f"{alias}-v{first['id']}"
    assert kb.list_indexes(f"{alias}-v") == [f"{alias}-v{first['id']}"]
    final = call(client, "get", f"/api/v2/training-jobs/{second['id']}")[1]
    assert final["status"] == "CANCELLED"
    assert [step["status"] for step in final["steps"]][5:] == [
        "succeeded",
        "skipped",
        "skipped",
        "skipped",
    ]


def test_a_malformed_dataset_fails_with_a_readable_reason(client, tmp_path):
    (tmp_path / "documents.jsonl").write_text('{"id": 1, "text": "ok"\n{broken\n')
    dataset = upload(tmp_path, "broken")
    minion_id = call(client, "post", "/api/v2/minions", {"name": "x"})[1]["id"]
    job, _ = train(client, minion_id, dataset)

    assert job["status"] == "FAILED"
    assert job["error"]["step"] == "Dataset Loading & Refinement"
    assert job["error"]["type"] == "DatasetError"
    assert "documents.jsonl" in job["error"]["message"]
    assert job["progress"] == pytest.approx(11.12)
    assert call(client, "get", f"/api/v2/minions/{minion_id}")[1]["active_job_id"] is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_run_command_trains_a_demo_minion_and_exits(small_cisi, tmp_path):
    command = [
        sys.executable,
        "-m",
        "chalicelib.local_service",
        "--exit-after-demo",
        "--dataset",
        str(small_cisi),
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCEEDED" in result.stdout
    assert "step 4/9 Embedding Creation" in result.stdout
    assert "ndcg_at_10" in result.stdout
