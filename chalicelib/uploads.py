"""Dataset uploads straight to S3 through presigned URLs, so big files never pass the API."""

from __future__ import annotations

import re
import uuid
from typing import Any

import boto3

from chalicelib.config import settings
from chalicelib.errors import BadRequest

UPLOAD_EXPIRY_SECONDS = 3600
FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


def presigned_upload(owner: str, filename: str, folder: str | None = None) -> dict[str, Any]:
    """A PUT URL for one file under the owner's uploads. Files sent with the same ``folder``
    form one dataset (e.g. a collection's three SMART files): train on the ``folder_uri``."""
    if not FILENAME.fullmatch(filename) or ".." in filename:
        raise BadRequest("filename must be a plain file name (letters, digits, . _ -)")
    bucket = settings().dataset_bucket
    prefix = f"uploads/{owner}/{folder or uuid.uuid4().hex}/"
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
