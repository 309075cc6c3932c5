"""Settings read from the environment, so one code base runs on a laptop and in AWS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    region: str
    jobs_table: str
    minions_table: str
    counters_table: str
    dataset_bucket: str
    state_machine_arn: str
    kb_backend: str
    lancedb_path: Path
    opensearch_url: str
    opensearch_service: str
    query_function: str


def settings() -> Settings:
    env = os.environ.get
    return Settings(
        region=env("AWS_DEFAULT_REGION", env("AWS_REGION", "us-east-1")),
        jobs_table=env("JOBS_TABLE", "training-jobs"),
        minions_table=env("MINIONS_TABLE", "minions"),
        counters_table=env("COUNTERS_TABLE", "counters"),
        dataset_bucket=env("DATASET_BUCKET", "minion-datasets"),
        state_machine_arn=env("STATE_MACHINE_ARN", ""),
        kb_backend=env("KB_BACKEND", "lancedb"),
        lancedb_path=Path(env("LANCEDB_PATH", ".local/lancedb")),
        opensearch_url=env("OPENSEARCH_URL", ""),
        opensearch_service=env("OPENSEARCH_SERVICE", "aoss"),
        query_function=env("QUERY_FUNCTION", ""),
    )
