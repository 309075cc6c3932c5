"""Everything a client can get wrong answers 4xx with {"error": {"code", "message"}}."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from chalice.test import Client

from tests.conftest import REPO


@pytest.fixture
def client(local_service: str) -> Client:
    import app

    with Client(app.app) as test_client:
        yield test_client


def send(client: Client, method: str, path: str, body: bytes | str | None = None) -> object:
    headers = {"Content-Type": "application/json"}
    return getattr(client.http, method)(path, body=body, headers=headers)


def minion(client: Client) -> str:
    return send(client, "post", "/api/v2/minions", json.dumps({"name": "x"})).json_body["id"]


def assert_error(response: object, status: int, code: str, words: str) -> None:
    assert response.status_code == status, response.body
    error = response.json_body["error"]
    assert error["code"] == code
    assert words in error["message"]


@pytest.mark.parametrize(
    ("path", "status", "code", "words"),
    [
        ("/api/v2/training-jobs/abc", 400, "bad_request", "positive integer"),
        ("/api/v2/training-jobs/-1", 400, "bad_request", "positive integer"),
        ("/api/v2/training-jobs/99999999999999999999", 400, "bad_request", "positive integer"),
        ("/api/v2/training-jobs/42", 404, "not_found", "training job 42"),
        ("/api/v2/minions/nope", 400, "bad_request", "not a minion id"),
        ("/api/v2/minions/m-000000000000", 404, "not_found", "m-000000000000"),
        ("/api/v2/training-jobs", 400, "bad_request", "minion_id is required"),
        ("/api/v2/training-jobs?minion_id=m-000000000000&x=1", 400, "bad_request", "x"),
        ("/api/v2/training-jobs?minion_id=m-000000000000", 404, "not_found", "m-000000000000"),
    ],
)
def test_bad_reads(client, path, status, code, words):
    assert_error(send(client, "get", path), status, code, words)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"dataset": "s3://b-x/k"}', "missing field: minion_id"),
        ('{"minion_id": 7, "dataset": "s3://b-x/k"}', "minion_id must be of type str"),
        ('{"minion_id": "m-000000000000", "dataset": "s3://b-x/k", "colour": 1}', "colour"),
        ('{"minion_id": "m-000000000000", "dataset": "/etc/passwd"}', "s3://bucket/key"),
        ('{"minion_id": "bad", "dataset": "s3://b-x/k"}', "not a minion id"),
        (
            '{"minion_id": "m-000000000000", "dataset": "s3://b-x/k", "options": {"x": 1}}',
            "unknown option",
        ),
        (
            '{"minion_id": "m-000000000000", "dataset": "s3://b-x/k", '
            '"options": {"chunk_tokens": 1000}}',
            "chunk_tokens must be an integer from 32 to 256",
        ),
    ],
)
def test_bad_training_requests(client, body, words):
    assert_error(send(client, "post", "/api/v2/training-jobs", body), 400, "bad_request", words)


def test_unknown_minion_for_training_is_404(client):
    body = json.dumps({"minion_id": "m-000000000000", "dataset": "s3://bucket-x/key"})
    assert_error(send(client, "post", "/api/v2/training-jobs", body), 404, "not_found", "minion")


def test_oversize_body_is_413(client):
    body = json.dumps({"name": "x" * 70_000})
    assert_error(send(client, "post", "/api/v2/minions", body), 413, "payload_too_large", "bytes")


def test_bad_idempotency_key(client):
    body = json.dumps({"minion_id": minion(client), "dataset": "s3://bucket-x/key"})
    response = client.http.post(
        "/api/v2/training-jobs",
        body=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": "x" * 200},
    )
    assert_error(response, 400, "bad_request", "Idempotency-Key")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"question": ""}', "must not be empty"),
        ('{"question": "q", "k": 0}', "k must be"),
        ('{"question": "q", "k": true}', "k must be of type int"),
        ('{"question": "q", "mode": "magic"}', "mode must be one of"),
        ('{"k": 3}', "missing field: question"),
    ],
)
def test_bad_queries(client, body, words):
    path = f"/api/v2/minions/{minion(client)}/query"
    assert_error(send(client, "post", path, body), 400, "bad_request", words)


def test_query_before_training_is_409(client):
    path = f"/api/v2/minions/{minion(client)}/query"
    response = send(client, "post", path, json.dumps({"question": "what?"}))
    assert_error(response, 409, "conflict", "train it first")


def test_empty_minion_name(client):
    response = send(client, "post", "/api/v2/minions", json.dumps({"name": "  "}))
    assert_error(response, 400, "bad_request", "name must not be empty")


def test_cors_headers_expose_etag_and_location(client):
    response = send(client, "post", "/api/v2/minions", json.dumps({"name": "x"}))
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    assert response.headers["Location"].startswith("/api/v2/minions/m-")


def test_presigned_upload_then_train_from_it(client):
    import requests

    response = send(client, "post", "/api/v2/dataset-uploads", json.dumps({"filename": "d.jsonl"}))
    assert response.status_code == 201
    upload = response.json_body
    assert upload["dataset"].startswith("s3://minion-datasets/uploads/local/")
    put = requests.put(upload["upload_url"], data=b'{"id": 1, "text": "hello"}\n', timeout=10)
    assert put.status_code == 200
    import boto3

    bucket, key = upload["dataset"][5:].split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b'{"id": 1, "text": "hello"}\n'
    bad = send(client, "post", "/api/v2/dataset-uploads", json.dumps({"filename": "../x"}))
    assert_error(bad, 400, "bad_request", "filename must be a plain name")
    for folder in ("../x", "a/b", "x..y"):
        body = json.dumps({"filename": "d.jsonl", "folder": folder})
        bad = send(client, "post", "/api/v2/dataset-uploads", body)
        assert_error(bad, 400, "bad_request", "folder must be a plain name")


def test_importing_the_api_loads_no_model_code():
    code = (
        "import sys, app; heavy = {'torch', 'sentence_transformers', 'transformers', 'lancedb'};"
        "loaded = heavy & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_step_image_needs_no_chalice():
    code = "import sys; sys.modules['chalice'] = None; import chalicelib.step_lambdas"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_owners_are_stable_across_sessions_and_distinct_between_callers():
    from chalicelib.auth import LOCAL_OWNER, owner_of

    role = "arn:aws:sts::123456789012:assumed-role/Trainer/"

    def iam(arn: str) -> dict:
        return {"identity": {"userArn": arn}}

    assert owner_of(iam(role + "session-a")) == owner_of(iam(role + "session-b"))
    assert owner_of(iam(role + "a")) != owner_of(iam("arn:aws:iam::123456789012:user/bob"))
    cognito = {"authorizer": {"claims": {"sub": "abc"}}}
    assert owner_of(cognito) not in (LOCAL_OWNER, owner_of(iam(role + "a")))
    assert owner_of({}) == LOCAL_OWNER


def test_a_timed_out_step_gets_a_readable_reason():
    from chalicelib.step_lambdas import readable_error

    assert readable_error("States.Timeout", "") == (
        "States.Timeout",
        "the step ran longer than its time limit",
    )
    cause = '{"errorType": "DatasetError", "errorMessage": "d.jsonl:3: invalid JSON"}'
    assert readable_error("DatasetError", cause) == ("DatasetError", "d.jsonl:3: invalid JSON")
