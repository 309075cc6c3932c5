"""Dataset uploads straight to S3 through presigned URLs, so big files never pass the API."""

from __future__ import annotations

import re
import uuid
from typing import Any

import boto3

from chalicelib.config import settings
from chalicelib.errors import BadRequest

UPLOAD_EXPIRY_SECONDS = 3600
MAX_FILENAME_CHARS = 201
MAX_FOLDER_CHARS = 101
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


def _plain_name(value: str, field: str, max_chars: int) -> str:
    """One S3 key segment: no slashes, no ``..``, so an upload stays in the owner's folder."""
    if not PLAIN_NAME.fullmatch(value) or ".." in value or len(value) > max_chars:
        raise BadRequest(f"{field} must be a plain name (letters, digits, . _ -)")
    return value


def presigned_upload(owner: str, filename: str, folder: str | None = None) -> dict[str, Any]:
    """A PUT URL for one file under the owner's uploads. Files sent with the same ``folder``
    form one dataset (e.g. a collection's three SMART files): train on the ``folder_uri``."""
    filename = _plain_name(filename, "filename", MAX_FILENAME_CHARS)
    folder = (
        _plain_name(folder, "folder", MAX_FOLDER_CHARS) if folder is not None else uuid.uuid4().hex
    )
    bucket = settings().dataset_bucket
    prefix = f"uploads/{owner}/{folder}/"
    url = boto3.client("s3", region_name=settings().region).generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": prefix + filename},
        ExpiresIn=UPLOAD_EXPIRY_SECONDS,
    )
    return {
        "dataset": f"s3://{bucket}/{prefix}{filename}",
        "folder_uri": f"s3://{bucket}/{prefix}",
        "upload_url": url,
        "method": "PUT",
        "expires_in": UPLOAD_EXPIRY_SECONDS,
    }
