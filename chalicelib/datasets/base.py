"""The dataset model every reader produces, and the reader interface."""

from __future__ import annotations

import codecs
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one bad upload from exhausting a Lambda's memory, disk or time."""

    max_file_bytes: int = 200 * 1024 * 1024  # one input file, or one S3 object
    max_zip_bytes: int = 500 * 1024 * 1024  # uncompressed text read out of one zip
    max_download_bytes: int = 1024 * 1024 * 1024  # all objects under one S3 prefix
    max_document_chars: int = 1_000_000  # longer documents are skipped by refine()
    max_documents: int = 100_000  # more documents than this is an error
    max_reported_skips: int = 100  # skipped records listed in the report (job record size)


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalItem:
    """An evaluation question: judged by the documents that answer it, or by a reference answer."""

    question: str
    relevant_ids: tuple[str, ...] = ()
    answer: str = ""


@dataclass
class Skipped:
    """One input record a reader or the refinement left out, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class Dataset:
    documents: list[Document]
    eval_items: list[EvalItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class DatasetReader(ABC):
    """Reads one on-disk format into a Dataset. Readers never raise anything but DatasetError."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    @classmethod
    @abstractmethod
    def accepts(cls, path: Path) -> bool:
        """Whether this reader understands the file or folder at ``path``."""

    @abstractmethod
    def read(self, path: Path) -> Dataset:
        """Read the dataset at ``path``; records it cannot use go to ``Dataset.skipped``."""


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_DRIVE = re.compile(r"[A-Za-z]:")


def decode_utf8(data: bytes, name: str) -> str:
    """Decode UTF-8 (an optional BOM is dropped); anything else is an error naming the byte.

    A file that is not UTF-8 is almost always a whole export in another encoding, so the reader
    stops rather than silently dropping it: the user re-saves it as UTF-8.
    """
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return str(memoryview(data)[bom:], "utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + bom
        line = data.count(b"\n", 0, offset) + 1
        hint = " (it looks like UTF-16)" if data[:2] in _UTF16_BOMS else ""
        raise DatasetError(
            f"{name}: not valid UTF-8 at byte offset {offset} (line {line}){hint};"
            " save the file as UTF-8"
        ) from None


def read_bytes(path: Path, name: str, limits: Limits) -> bytes:
    """Read a file after checking its size, so an oversize file is never loaded."""
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise DatasetError(
                f"{name}: {size:,} bytes is over the limit of {limits.max_file_bytes:,} bytes"
            )
        return path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{name}: cannot be read ({exc.strerror or exc})") from None


def read_text(path: Path, name: str, limits: Limits) -> str:
    return decode_utf8(read_bytes(path, name, limits), name)


def is_safe_relative(name: str) -> bool:
    """Whether a zip entry or S3 key, unpacked under a folder, stays inside that folder."""
    name = name.replace("\\", "/")
    parts = name.rstrip("/").split("/")
    return (
        not name.startswith("/")
        and not _DRIVE.match(name)
        and "" not in parts
        and ".." not in parts
    )
