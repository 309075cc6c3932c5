"""The training service's HTTP API (Chalice): routes only, the logic lives in chalicelib."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice import Chalice, CORSConfig, Response

from chalicelib import jobs, minions, uploads, validation
from chalicelib.auth import authorizer, owner_of
from chalicelib.responses import cacheable, json_errors, json_response
from chalicelib.validation import Field
from chalicelib.views import job_view, minion_view

app = Chalice(app_name="minion-training")
app.log.setLevel(logging.INFO)
app.api.cors = CORSConfig(
    allow_origin="*",
    allow_headers=["Idempotency-Key", "If-None-Match"],
    expose_headers=["ETag", "Location"],
)
AUTHORIZER = authorizer()
AUTH = {"authorizer": AUTHORIZER} if AUTHORIZER else {}


def route(path: str, method: str) -> Callable[[Callable[..., Any]], Any]:
    """A route behind the authorizer whose errors answer as JSON."""
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
    name = validation.text(body["name"], "name", validation.MAX_NAME_CHARS)
    minion = minions.create_minion(_owner(), name)
    return json_response(minion_view(minion), 201, Location=f"/api/v2/minions/{minion.id}")


@route("/api/v2/minions/{minion_id}", "GET")
def get_minion(minion_id: str) -> dict[str, Any]:
    return minion_view(minions.get_minion(validation.minion_id(minion_id), _owner()))


@route("/api/v2/minions/{minion_id}/query", "POST")
def query_minion(minion_id: str) -> dict[str, Any]:
    minion = minions.get_minion(validation.minion_id(minion_id), _owner())
    body = _body({"question": Field(str, required=True), "k": Field(int), "mode": Field(str)})
    question = validation.text(body["question"], "question", validation.MAX_QUESTION_CHARS)
    k = validation.top_k(body.get("k", validation.DEFAULT_K))
    mode = validation.search_mode(body.get("mode", "hybrid"))
    hits = minions.query_minion(minion, question, k, mode)
    return {"minion_id": minion.id, "mode": mode, "hits": hits}


@route("/api/v2/dataset-uploads", "POST")
def create_upload() -> Response:
    body = _body({"filename": Field(str, required=True), "folder": Field(str)})
    upload = uploads.presigned_upload(_owner(), body["filename"], body.get("folder"))
    return json_response(upload, 201)


@route("/api/v2/training-jobs", "POST")
def create_training_job() -> Response:
    body = _body(
        {
            "minion_id": Field(str, required=True),
            "dataset": Field(str, required=True),
            "options": Field(dict),
        }
    )
    job, created = jobs.create_job(
        _owner(),
        validation.minion_id(body["minion_id"]),
        validation.dataset_uri(body["dataset"]),
        validation.training_options(body.get("options", {})),
        validation.idempotency_key(app.current_request.headers.get("idempotency-key")),
    )
    location = f"/api/v2/training-jobs/{job.id}"
    return json_response(job_view(job), 202 if created else 200, Location=location)


@route("/api/v2/training-jobs", "GET")
def list_training_jobs() -> dict[str, Any]:
    minion_id, status, limit, next_token = validation.job_list_params(
        app.current_request.query_params
    )
    found, token = jobs.list_jobs(_owner(), minion_id, status, limit, next_token)
    return {"items": [job_view(job) for job in found], "next_token": token}


@route("/api/v2/training-jobs/{job_id}", "GET")
def get_training_job(job_id: str) -> Response:
    job = jobs.get_job(validation.job_id(job_id), _owner())
    return cacheable(job_view(job), app.current_request.headers.get("if-none-match"))


@route("/api/v2/training-jobs/{job_id}/cancel", "POST")
def cancel_training_job(job_id: str) -> dict[str, Any]:
    return job_view(jobs.cancel_job(validation.job_id(job_id), _owner()))
