"""The state machine definition in ``statemachine/`` and the Lambda functions it names.

The definition refers to each function as ``${<Handler>FunctionArn}``; the deployment (CDK) and
the local service substitute real ARNs, so the same file runs in AWS and on a laptop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalicelib.steps import STEPS

DEFINITION_PATH = Path(__file__).resolve().parents[1] / "statemachine" / "training.asl.json"
END_HANDLERS = ("mark_succeeded", "mark_failed")
TASK_HANDLERS = (*(step.handler for step in STEPS), *END_HANDLERS)
HANDLER_MODULE = "chalicelib.step_lambdas"


def substitution_key(handler: str) -> str:
    """``create_embeddings`` -> ``CreateEmbeddingsFunctionArn``."""
    return "".join(part.title() for part in handler.split("_")) + "FunctionArn"


def function_name(handler: str, prefix: str = "minion-training") -> str:
    return f"{prefix}-{handler.replace('_', '-')}"


def definition_text() -> str:
    return DEFINITION_PATH.read_text(encoding="utf-8")


def substitute(arns: Mapping[str, str]) -> dict[str, Any]:
    """The definition with every ``${...FunctionArn}`` replaced; ``arns`` is keyed by handler."""
    text = definition_text()
    for handler in TASK_HANDLERS:
        text = text.replace("${" + substitution_key(handler) + "}", arns[handler])
    return json.loads(text)
