"""Request parsing: every malformed input becomes a BadRequest that names the field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import BadRequest, PayloadTooLarge
from chalicelib.models import JOB_STATUSES
from chalicelib.retrieval import MODES

MAX_BODY_BYTES = 64 * 1024
MAX_QUESTION_CHARS = 2000
MAX_NAME_CHARS = 200
DEFAULT_K = 5
MAX_K = 50
MINION_ID = re.compile(r"m-[0-9a-f]{12}")
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
DATASET_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[!-~]+")
POSITIVE_INT = re.compile(r"[1-9][0-9]{0,15}")
MAX_PAGE = 100


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = False


def json_body(raw: bytes | None, fields: Mapping[str, Field]) -> dict[str, Any]:
    """The body as a dict with only known fields, each of the declared type."""
    if raw and len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    for name, field in fields.items():
        if name not in body:
            if field.required:
                raise BadRequest(f"missing field: {name}")
            continue
        value = body[name]
        kinds = field.kind if isinstance(field.kind, tuple) else (field.kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = " or ".join(kind.__name__ for kind in kinds)
            raise BadRequest(f"field {name} must be of type {expected}")
    return body


def text(value: str, name: str, max_chars: int) -> str:
    value = value.strip()
    if not value:
        raise BadRequest(f"field {name} must not be empty")
    if len(value) > max_chars:
        raise BadRequest(f"field {name} is longer than {max_chars} characters")
    return value


def job_id(raw: str) -> int:
    if not POSITIVE_INT.fullmatch(raw):
        raise BadRequest(f"job id must be a positive integer, not {raw[:40]!r}")
    return int(raw)


def minion_id(raw: str) -> str:
    if not MINION_ID.fullmatch(raw):
        raise BadRequest(f"{raw[:40]!r} is not a minion id (m- and 12 hex digits)")
    return raw


def dataset_uri(raw: str) -> str:
    if not DATASET_URI.fullmatch(raw):
        raise BadRequest(f"dataset must be an s3://bucket/key URI, not {raw[:200]!r}")
    return raw


def idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(raw):
        raise BadRequest("Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return raw


def training_options(raw: Mapping[str, Any]) -> dict[str, int]:
    """Chunking options; unknown keys are refused rather than silently ignored."""
    allowed = {"chunk_tokens": (32, 256), "chunk_overlap": (0, 128)}
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown option(s): {', '.join(unknown)}")
    options = {}
    for name, value in raw.items():
        low, high = allowed[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise BadRequest(f"option {name} must be an integer from {low} to {high}")
        options[name] = value
    if options.get("chunk_overlap", 0) >= options.get("chunk_tokens", 256):
        raise BadRequest("option chunk_overlap must be smaller than chunk_tokens")
    return options


def job_list_params(
    params: Mapping[str, str] | None,
) -> tuple[str, str | None, int, str | None]:
    """``minion_id`` (required), ``status``, ``limit`` (1-100, default 20), ``next_token``."""
    params = dict(params or {})
    unknown = sorted(set(params) - {"minion_id", "status", "limit", "next_token"})
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}")
    if "minion_id" not in params:
        raise BadRequest("query parameter minion_id is required")
    status = params.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(JOB_STATUSES)}")
    raw_limit = params.get("limit", "20")
    if not POSITIVE_INT.fullmatch(raw_limit) or int(raw_limit) > MAX_PAGE:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE}")
    return minion_id(params["minion_id"]), status, int(raw_limit), params.get("next_token")


def search_mode(raw: str) -> str:
    if raw not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}")
    return raw


def top_k(raw: int) -> int:
    if not 1 <= raw <= MAX_K:
        raise BadRequest(f"k must be an integer from 1 to {MAX_K}")
    return raw
