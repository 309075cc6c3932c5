"""Plain-text and Markdown datasets: a folder of ``.txt``/``.md`` files, one such file, or a
``.zip`` of them.

A document's id is its path relative to the folder or archive root; its title is the first
Markdown heading of a ``.md`` file, else the file's stem. Hidden files and folders (``.git``,
and the ``__MACOSX`` resource forks macOS adds to zips) are ignored; other files are skipped.
Zip members are read in memory, never extracted.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from chalicelib.datasets.base import (
    Dataset,
    DatasetError,
    DatasetReader,
    Document,
    Skipped,
    decode_utf8,
    is_safe_relative,
    read_bytes,
    read_text,
)

SUFFIXES = (".txt", ".md")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
# What zipfile raises on corrupt or unsupported archives (found by fuzzing, not only documented).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,
    EOFError,
    ValueError,
    struct.error,
    zlib.error,
)


class TextReader(DatasetReader):
    @classmethod
    def accepts(cls, path: Path) -> bool:
        if path.is_dir():
            return any(_is_text(relative) for relative, _ in _files(path))
        return path.suffix.lower() in (*SUFFIXES, ".zip")

    def read(self, path: Path) -> Dataset:
        if path.suffix.lower() == ".zip" and path.is_file():
            return self._read_zip(path)
        if path.is_file():
            return Dataset([_document(path.name, read_text(path, path.name, self.limits))])
        dataset = Dataset([])
        for relative, file in _files(path):
            if _is_text(relative):
                text = read_text(file, relative, self.limits)
                dataset.documents.append(_document(relative, text))
            else:
                dataset.skipped.append(Skipped(relative, _NOT_TEXT))
        return dataset

    def _read_zip(self, path: Path) -> Dataset:
        name = path.name
        try:
            archive = zipfile.ZipFile(io.BytesIO(read_bytes(path, name, self.limits)))
        except _ZIP_ERRORS as exc:
            raise DatasetError(f"{name}: not a readable zip archive ({exc})") from None
        with archive:
            members = archive.infolist()
            for info in members:
                if not is_safe_relative(info.filename):
                    raise DatasetError(
                        f"{name}: entry {info.filename!r} points outside the archive"
                        " (path traversal); refusing the archive"
                    )
            dataset = Dataset([])
            total = 0
            for info in members:
                member = info.filename.replace("\\", "/")
                source = f"{name}/{member}"
                if info.is_dir() or _hidden(member):
                    continue
                if not _is_text(member):
                    dataset.skipped.append(Skipped(source, _NOT_TEXT))
                    continue
                total += info.file_size
                if total > self.limits.max_zip_bytes:
                    raise DatasetError(
                        f"{source}: the archive's text unpacks to more than"
                        f" {self.limits.max_zip_bytes:,} bytes (zip bomb?); refusing the archive"
                    )
                dataset.documents.append(_document(member, _member_text(archive, info, source)))
        return dataset


_NOT_TEXT = f"not a {' or '.join(SUFFIXES)} file"


def _member_text(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> str:
    """Read at most the declared size: an unbounded read() decompresses up to 2 GiB at once."""
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size)
    except _ZIP_ERRORS as exc:
        raise DatasetError(f"{source}: cannot be read from the archive ({exc})") from None
    return decode_utf8(data, source)


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    """The folder's non-hidden files, by relative path, in a stable order."""
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root).as_posix()
        if file.is_file() and not _hidden(relative):
            yield relative, file


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.split("/"))


def _is_text(relative: str) -> bool:
    return PurePosixPath(relative).suffix.lower() in SUFFIXES


def _document(relative: str, text: str) -> Document:
    path = PurePosixPath(relative)
    heading = _HEADING.search(text) if path.suffix.lower() == ".md" else None
    return Document(id=relative, text=text, title=heading[1] if heading else path.stem)
