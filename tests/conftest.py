"""Shared fixtures: local AWS (moto) with the real state machine, and job helpers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

REPO = Path(__file__).resolve().parents[1]
CISI = Path(os.environ.get("CISI_PATH", REPO.parent / "shared" / "datasets" / "cisi"))


@pytest.fixture
def local_service(tmp_path: Path) -> Iterator[str]:
    """moto DynamoDB, S3 and Step Functions, the real definition deployed; yields its ARN."""
    from chalicelib.local_aws import local_aws

    with local_aws(tmp_path) as machine:
        yield machine


def wait_for_end(job_id: int, timeout: float = 120.0) -> None:
    """Until the job's execution has stopped running (moto runs it on a thread)."""
    import boto3

    from chalicelib.jobs import execution_arn_for

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sfn.describe_execution(executionArn=execution_arn_for(job_id))["status"]
        if status != "RUNNING":
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}'s execution still running after {timeout}s")
