"""Every Lambda entry point of the step image: the nine steps, the two ends, the query.

In AWS each is one function of the same container image (``CMD`` names it); locally the
moto Step Functions interpreter dispatches its Lambda tasks to these same functions.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from chalicelib import jobs, training
from chalicelib.errors import ServiceError
from chalicelib.minions import search_alias
from chalicelib.runner import run_step
from chalicelib.steps import STEP_BY_HANDLER

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _step(handler_name: str) -> Handler:
    """The entry point of one step: the shared runner around that step's work in training."""
    step = STEP_BY_HANDLER[handler_name]

    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return run_step(step, getattr(training, handler_name), event)

    handler.__name__ = handler_name
    handler.__doc__ = f"Lambda entry point of step {step.index + 1}, {step.name!r}."
    return handler


capture_before_metrics = _step("capture_before_metrics")
load_dataset = _step("load_dataset")
create_knowledge_base = _step("create_knowledge_base")
create_embeddings = _step("create_embeddings")
update_minion = _step("update_minion")
validate_training = _step("validate_training")
run_tests = _step("run_tests")
capture_after_metrics = _step("capture_after_metrics")
calculate_improvements = _step("calculate_improvements")


def mark_succeeded(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    jobs.mark_succeeded(int(event["job_id"]), event["execution_arn"])
    return {"job_id": event["job_id"]}


def mark_failed(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The Catch target: ``error`` is Step Functions' ``{"Error", "Cause"}``."""
    error = event.get("error") or {}
    error_type, message = readable_error(error.get("Error", "Error"), error.get("Cause", ""))
    jobs.mark_failed(int(event["job_id"]), event["execution_arn"], error_type, message)
    return {"job_id": event["job_id"]}


TIMEOUTS = {
    "States.Timeout": "the step ran longer than its time limit",
    "Sandbox.Timedout": "the step's Lambda ran out of time",
}


def readable_error(error: str, cause: str) -> tuple[str, str]:
    """A Lambda error's Cause is the function's JSON error; keep its type and message."""
    if error in TIMEOUTS:
        return error, TIMEOUTS[error]
    try:
        payload = json.loads(cause)
    except (TypeError, ValueError):
        return error, cause or error
    if isinstance(payload, dict) and "errorMessage" in payload:
        return str(payload.get("errorType", error)), str(payload["errorMessage"])
    return error, cause


def on_execution_end(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """EventBridge "Step Functions Execution Status Change" for FAILED, TIMED_OUT, ABORTED."""
    detail = event["detail"]
    jobs.on_execution_end(detail["executionArn"], detail["status"], detail.get("cause"))
    return {"execution": detail["executionArn"]}


def query(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Answer a minion query for the API, which has no model of its own in AWS."""
    try:
        return {"hits": search_alias(event["alias"], event["question"], event["k"], event["mode"])}
    except ServiceError as exc:
        return exc.to_dict()
