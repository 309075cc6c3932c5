"""Dataset uploads straight to S3 through presigned URLs, so big files never pass the API."""

from __future__ import annotations

import re
import uuid
from typing import Any

import boto3

from chalicelib.config import settings
from chalicelib.errors import BadRequest

UPLOAD_EXPIRY_SECONDS = 3600
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def presigned_upload(owner: str, filename: str) -> dict[str, Any]:
    if not FILENAME.match(filename) or ".." in filename:
        raise BadRequest("filename must be a plain file name (letters, digits, . _ -)")
    bucket = settings().dataset_bucket
    key = f"uploads/{owner}/{uuid.uuid4().hex}/{filename}"
    url = boto3.client("s3", region_name=settings().region).generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": key},
        ExpiresIn=UPLOAD_EXPIRY_SECONDS,
    )
    return {
        "dataset": f"s3://{bucket}/{key}",
        "upload_url": url,
        "method": "PUT",
        "expires_in": UPLOAD_EXPIRY_SECONDS,
        "max_bytes": MAX_UPLOAD_BYTES,
    }
