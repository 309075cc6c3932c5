#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth` / `npx cdk deploy -c auth=iam` from this folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # chalicelib: the step list
sys.path.insert(0, str(Path(__file__).resolve().parent))  # stack.py

import aws_cdk as cdk
from stack import MinionTrainingStack


def main() -> None:
    app = cdk.App()
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account and region else None
    stack_name = app.node.try_get_context("stack_name") or "MinionTraining"
    MinionTrainingStack(app, stack_name, env=env, description="minion-training service")
    app.synth()


if __name__ == "__main__":
    main()
