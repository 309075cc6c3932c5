"""AWS on one machine: moto in-process for DynamoDB, S3 and Step Functions.

moto's own Step Functions interpreter executes the real definition; its Lambda tasks reach
moto's Lambda service, which this module answers by calling our handlers in-process. A stopped
execution is reported to ``on_execution_end`` as the deployed EventBridge rule would.
"""

from __future__ import annotations

import importlib
import json
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import boto3

ACCOUNT = "123456789012"
REGION = "us-east-1"
LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": REGION,
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "KB_BACKEND": "lancedb",
    "DATASET_BUCKET": "minion-datasets",
}


def _function_arn(handler: str) -> str:
    from chalicelib.statemachine import function_name

    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(handler)}"


def _handlers() -> dict[str, str]:
    from chalicelib.statemachine import HANDLER_MODULE, TASK_HANDLERS, function_name

    return {function_name(name): f"{HANDLER_MODULE}.{name}" for name in (*TASK_HANDLERS, "query")}


def _invoke_in_process(
    self: Any,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: dict[str, str],
) -> bytes:
    """Stands in for moto's Lambda invoke: runs our handler and answers as Lambda would."""
    name = function_name.split(":function:")[-1].split(":")[0]
    target = _handlers().get(name)
    if target is None:
        response_headers["x-amz-function-error"] = "Unhandled"
        error = {"errorType": "ResourceNotFoundException", "errorMessage": f"no function {name}"}
        return json.dumps(error).encode()
    module, attribute = target.rsplit(".", 1)
    handler = getattr(importlib.import_module(module), attribute)
    event = json.loads(body) if body else {}
    try:
        payload = json.dumps(handler(event, None))
    except Exception as exc:  # Lambda reports every exception to its caller
        response_headers["x-amz-function-error"] = "Unhandled"
        payload = json.dumps(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc),
            }
        )
    response_headers["Content-Length"] = str(len(payload))
    return payload.encode()


def _stop_and_notify(original: Any) -> Any:
    """StopExecution, then what the deployed EventBridge rule does for an ABORTED execution."""

    def stop_execution(self: Any, execution_arn: str) -> Any:
        from chalicelib.step_lambdas import on_execution_end

        was_running = self.describe_execution(execution_arn).status == "RUNNING"
        execution = original(self, execution_arn)
        if was_running:
            on_execution_end({"detail": {"executionArn": execution_arn, "status": "ABORTED"}})
        return execution

    return stop_execution


@contextmanager
def local_aws(data_dir: Path) -> Iterator[str]:
    """Start the local AWS stand-ins and deploy the tables, bucket and state machine into them;
    yields the state machine's ARN. ``data_dir`` holds the embedded knowledge base."""
    from moto import mock_aws
    from moto.awslambda.models import LambdaBackend
    from moto.stepfunctions.models import StepFunctionBackend

    env = {**LOCAL_ENV, "LANCEDB_PATH": str(data_dir / "lancedb")}
    with (
        mock.patch.dict(os.environ, env),
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        mock.patch.object(LambdaBackend, "invoke", _invoke_in_process),
        mock.patch.object(
            StepFunctionBackend,
            "stop_execution",
            _stop_and_notify(StepFunctionBackend.stop_execution),
        ),
    ):
        from chalicelib.config import settings
        from chalicelib.models import create_tables
        from chalicelib.statemachine import TASK_HANDLERS, substitute

        create_tables()
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=settings().dataset_bucket)
        definition = substitute({name: _function_arn(name) for name in TASK_HANDLERS})
        machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name="minion-training",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/minion-training-states",
        )["stateMachineArn"]
        os.environ["STATE_MACHINE_ARN"] = machine
        yield machine
