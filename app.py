"""The training service's HTTP API (Chalice): routes only, the logic lives in chalicelib."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice import Chalice, CORSConfig, Response

from chalicelib import jobs, minions, uploads, validation
from chalicelib.auth import authorizer, owner_of
from chalicelib.responses import json_errors
from chalicelib.validation import Field
from chalicelib.views import etag, job_view, minion_view

app = Chalice(app_name="minion-training")
app.log.setLevel(logging.INFO)
app.api.cors = CORSConfig(
    allow_origin="*",
    allow_headers=["Idempotency-Key", "If-None-Match"],
    expose_headers=["ETag", "Location"],
)
AUTH = {"authorizer": authorizer()} if authorizer() else {}
JSON = {"Content-Type": "application/json"}


def route(path: str, method: str) -> Callable[[Callable[..., Any]], Any]:
    """A route behind the authorizer whose client errors answer as JSON."""
    return lambda view: app.route(path, methods=[method], **AUTH)(json_errors(view))


def _owner() -> str:
    return owner_of(app.current_request.context)


def _body(fields: dict[str, Field]) -> dict[str, Any]:
    return validation.json_body(app.current_request.raw_body, fields)


@app.route("/api/v2/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@route("/api/v2/minions", "POST")
def create_minion() -> Response:
    body = _body({"name": Field(str, required=True)})
    minion = minions.create_minion(_owner(), validation.text(body["name"], "name", 200))
    location = f"/api/v2/minions/{minion.id}"
    return Response(minion_view(minion), status_code=201, headers={**JSON, "Location": location})


@route("/api/v2/minions/{minion_id}", "GET")
def get_minion(minion_id: str) -> dict[str, Any]:
    return minion_view(minions.get_minion(validation.minion_id(minion_id), _owner()))


@route("/api/v2/minions/{minion_id}/query", "POST")
def query_minion(minion_id: str) -> dict[str, Any]:
    minion = minions.get_minion(validation.minion_id(minion_id), _owner())
    body = _body({"question": Field(str, required=True), "k": Field(int), "mode": Field(str)})
    question = validation.text(body["question"], "question", validation.MAX_QUESTION_CHARS)
    k = validation.top_k(body.get("k", 5))
    mode = validation.search_mode(body.get("mode", "hybrid"))
    return {
        "minion_id": minion.id,
        "mode": mode,
        "hits": minions.query_minion(minion, question, k, mode),
    }


@route("/api/v2/dataset-uploads", "POST")
def create_upload() -> Response:
    body = _body({"filename": Field(str, required=True)})
    return Response(
        uploads.presigned_upload(_owner(), body["filename"]), status_code=201, headers=JSON
    )


@route("/api/v2/training-jobs", "POST")
def create_training_job() -> Response:
    body = _body(
        {
            "minion_id": Field(str, required=True),
            "dataset": Field(str, required=True),
            "options": Field(dict),
        }
    )
    headers = {name.lower(): value for name, value in app.current_request.headers.items()}
    job, created = jobs.create_job(
        _owner(),
        validation.minion_id(body["minion_id"]),
        validation.dataset_uri(body["dataset"]),
        validation.training_options(body.get("options", {})),
        validation.idempotency_key(headers.get("idempotency-key")),
    )
    location = f"/api/v2/training-jobs/{job.id}"
    return Response(
        job_view(job), status_code=202 if created else 200, headers={**JSON, "Location": location}
    )


@route("/api/v2/training-jobs", "GET")
def list_training_jobs() -> dict[str, Any]:
    minion_id, status, limit, next_token = validation.job_list_params(
        app.current_request.query_params
    )
    found, token = jobs.list_jobs(_owner(), minion_id, status, limit, next_token)
    return {"items": [job_view(job) for job in found], "next_token": token}


@route("/api/v2/training-jobs/{job_id}", "GET")
def get_training_job(job_id: str) -> Response:
    body = job_view(jobs.get_job(validation.job_id(job_id), _owner()))
    tag = etag(body)
    if app.current_request.headers.get("if-none-match") == tag:
        return Response("", status_code=304, headers={"ETag": tag})
    return Response(
        body, status_code=200, headers={**JSON, "ETag": tag, "Cache-Control": "no-cache"}
    )


@route("/api/v2/training-jobs/{job_id}/cancel", "POST")
def cancel_training_job(job_id: str) -> dict[str, Any]:
    return job_view(jobs.cancel_job(validation.job_id(job_id), _owner()))
