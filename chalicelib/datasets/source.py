"""Where a dataset comes from (a local path, or S3) and which reader understands it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import boto3
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.datasets.base import (
    Dataset,
    DatasetError,
    DatasetReader,
    Limits,
    is_safe_relative,
)
from chalicelib.datasets.csv_reader import CsvReader
from chalicelib.datasets.jsonl import JsonlReader
from chalicelib.datasets.smart import SmartReader
from chalicelib.datasets.text import TextReader

# The first reader that accepts a path reads it: a SMART or JSONL folder often holds a README.md
# too, so the text reader comes last.
READERS: tuple[type[DatasetReader], ...] = (SmartReader, JsonlReader, CsvReader, TextReader)
FORMATS = (
    "a .jsonl, .csv, .txt, .md or .zip file, or a folder holding documents.jsonl,"
    " a SMART .ALL file, or .txt/.md files"
)
_CHUNK = 1024 * 1024


def load_dataset(uri: str, limits: Limits | None = None) -> Dataset:
    """Read the dataset at ``uri``: a local path, or ``s3://bucket/key`` (one object or a prefix).

    Raises DatasetError naming the uri for anything unusable, including a dataset without
    documents; the records readers left out are in ``Dataset.skipped``.
    """
    limits = limits or Limits()
    if uri.startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="dataset-") as folder:
            path = _download(uri, Path(folder), limits)
            try:
                return _read(path, uri, limits)
            except DatasetError as exc:
                message = str(exc)
                raise DatasetError(message if uri in message else f"{uri}: {message}") from None
    path = Path(uri)
    if not path.exists():
        raise DatasetError(f"{uri}: no such file or folder")
    return _read(path, uri, limits)


def _read(path: Path, uri: str, limits: Limits) -> Dataset:
    if path.is_dir() and not any(path.iterdir()):
        raise DatasetError(f"{uri}: empty dataset (an empty folder)")
    reader = next((reader for reader in READERS if reader.accepts(path)), None)
    if reader is None:
        raise DatasetError(f"{uri}: unknown dataset format; expected {FORMATS}")
    dataset = reader(limits).read(path)
    if not dataset.documents:
        why = f"; the first of {len(dataset.skipped)} skipped: " if dataset.skipped else ""
        first = dataset.skipped[0] if dataset.skipped else ""
        raise DatasetError(f"{uri}: empty dataset (no documents{why}{first})")
    return dataset


def _download(uri: str, folder: Path, limits: Limits) -> Path:
    """Copy the object, or every object under the prefix, into ``folder``; return what to read.

    Sizes are checked from S3's listing before a byte is downloaded.
    """
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise DatasetError(f"{uri}: no bucket in the S3 uri")
    try:
        s3 = boto3.client("s3")
        objects = _objects(s3, uri, bucket, key)
        for object_key, size, relative in objects:
            if not is_safe_relative(relative):
                raise DatasetError(f"s3://{bucket}/{object_key}: key is not a safe file path")
            if size > limits.max_file_bytes:
                raise DatasetError(
                    f"s3://{bucket}/{object_key}: {size:,} bytes is over the limit of"
                    f" {limits.max_file_bytes:,} bytes"
                )
        total = sum(size for _, size, _ in objects)
        if total > limits.max_download_bytes:
            raise DatasetError(
                f"{uri}: {len(objects)} objects of {total:,} bytes in all, over the limit of"
                f" {limits.max_download_bytes:,} bytes"
            )
        for object_key, _, relative in objects:
            _fetch(s3, bucket, object_key, folder / relative, limits)
    except ClientError as exc:
        raise DatasetError(f"{uri}: {_problem(exc)}") from None
    except BotoCoreError as exc:
        raise DatasetError(f"{uri}: S3 is not reachable ({exc})") from None
    except OSError as exc:  # e.g. keys "a/b" and "a/b/c": a file and a folder of the same name
        raise DatasetError(f"{uri}: cannot be saved locally ({exc})") from None
    return folder / objects[0][2] if len(objects) == 1 else folder


def _objects(s3: BaseClient, uri: str, bucket: str, key: str) -> list[tuple[str, int, str]]:
    """(key, size, path relative to the download folder) of the object, else of the prefix."""
    if key and not key.endswith("/"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            return [(key, head["ContentLength"], key.rsplit("/", 1)[-1])]
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchKey"):
                raise
    prefix = f"{key}/" if key and not key.endswith("/") else key
    found = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):  # "folder" marker objects hold nothing
                found.append((item["Key"], item["Size"], item["Key"][len(prefix) :]))
    if not found:
        raise DatasetError(f"{uri}: no such object, and no objects under that prefix")
    return found


def _fetch(s3: BaseClient, bucket: str, key: str, target: Path, limits: Limits) -> None:
    """Stream one object to disk, stopping if it grew past the limit since it was listed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    written = 0
    with target.open("wb") as out:
        for chunk in body.iter_chunks(_CHUNK):
            written += len(chunk)
            if written > limits.max_file_bytes:
                raise DatasetError(
                    f"s3://{bucket}/{key}: over the limit of {limits.max_file_bytes:,} bytes"
                )
            out.write(chunk)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _problem(exc: ClientError) -> str:
    code = _code(exc)
    if code == "NoSuchBucket":
        return "no such bucket"
    if code in ("403", "AccessDenied"):
        return "access denied"
    return f"S3 error {code} ({exc.response.get('Error', {}).get('Message', '')})"
