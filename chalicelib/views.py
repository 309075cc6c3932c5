"""JSON shapes the API returns; the web card reads id, minion_id, status, progress, *_at."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pynamodb.attributes import MapAttribute

from chalicelib.models import Minion, TrainingJob
from chalicelib.steps import STEPS


def _plain(value: MapAttribute | None) -> dict[str, Any] | None:
    return value.as_dict() if value is not None else None


def job_view(job: TrainingJob) -> dict[str, Any]:
    current = job.current_step
    return {
        "id": job.id,
        "minion_id": job.minion_id,
        "status": job.status,
        "progress": job.progress,
        "current_step": (
            {"index": int(current), "name": STEPS[int(current)].name}
            if current is not None
            else None
        ),
        "steps": [
            {
                "index": index,
                "name": record.name,
                "status": record.status,
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "message": record.message,
                "counters": _plain(record.counters) or {},
            }
            for index, record in enumerate(job.steps)
        ],
        "error": _plain(job.error),
        "metrics": {
            "before": _plain(job.metrics_before),
            "after": _plain(job.metrics_after),
            "improvements": _plain(job.improvements),
            "tests": _plain(job.test_results),
        },
        "dataset": job.dataset,
        "dataset_report": _plain(job.dataset_report),
        "options": _plain(job.options) or {},
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }


def minion_view(minion: Minion) -> dict[str, Any]:
    return {
        "id": minion.id,
        "name": minion.name,
        "kb_alias": minion.kb_alias,
        "active_job_id": minion.active_job_id,
        "last_job_id": minion.last_job_id,
        "last_metrics": _plain(minion.last_metrics),
        "created_at": minion.created_at,
        "updated_at": minion.updated_at,
    }


def etag(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f'"{digest[:32]}"'
