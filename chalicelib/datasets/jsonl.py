"""JSONL datasets, and the writer the pipeline stores refined copies with.

Layout: a single ``.jsonl`` file of documents, or a folder holding ``documents.jsonl`` and
optionally ``eval.jsonl`` (or ``questions.jsonl``) with evaluation questions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from chalicelib.datasets.base import (
    Dataset,
    DatasetError,
    DatasetReader,
    Document,
    EvalItem,
    Skipped,
    read_text,
)

DOCUMENTS_FILE = "documents.jsonl"
EVAL_FILES = ("eval.jsonl", "questions.jsonl")
_DOCUMENT_FIELDS = {"id", "title", "text", "metadata"}
# json.loads turns "\ud800" escapes into lone surrogates, which cannot be written back as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")

Record = TypeVar("Record", Document, EvalItem)


class _Invalid(Exception):
    """A line that parses as JSON but is not a usable record; the message is the reason."""


class JsonlReader(DatasetReader):
    @classmethod
    def accepts(cls, path: Path) -> bool:
        if path.is_dir():
            return (path / DOCUMENTS_FILE).is_file()
        return path.suffix.lower() == ".jsonl"

    def read(self, path: Path) -> Dataset:
        if not path.is_dir():
            documents, skipped = self._records(path, path.name, _document)
            return Dataset(documents, [], skipped)
        eval_files = [path / name for name in EVAL_FILES if (path / name).is_file()]
        if len(eval_files) > 1:
            raise DatasetError(f"{path.name}: holds both {' and '.join(EVAL_FILES)}; keep one")
        documents, skipped = self._records(path / DOCUMENTS_FILE, DOCUMENTS_FILE, _document)
        eval_items: list[EvalItem] = []
        for eval_file in eval_files:
            eval_items, eval_skipped = self._records(eval_file, eval_file.name, _eval_item)
            skipped += eval_skipped
        return Dataset(documents, eval_items, skipped)

    def _records(
        self, path: Path, name: str, parse: Callable[[object], Record]
    ) -> tuple[list[Record], list[Skipped]]:
        """Parse each non-blank line; a file where no line is usable is not JSONL at all."""
        records: list[Record] = []
        skipped: list[Skipped] = []
        # split("\n"), not splitlines(): JSON strings may hold U+2028 and other line breaks.
        for number, line in enumerate(read_text(path, name, self.limits).split("\n"), start=1):
            if not line.strip():
                continue
            try:
                records.append(parse(_loads(line)))
            except _Invalid as exc:
                skipped.append(Skipped(f"{name}:{number}", str(exc)))
        if skipped and not records:
            raise DatasetError(f"{name}: no usable line; the first problem is {skipped[0]}")
        return records, skipped


def write_jsonl(dataset: Dataset, folder: Path | str) -> None:
    """Write ``documents.jsonl`` and ``eval.jsonl`` into ``folder``, for JsonlReader to read back.

    Metadata goes under a ``metadata`` object so that keys such as ``id`` survive the round trip.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_lines(
        folder / DOCUMENTS_FILE,
        (
            {"id": doc.id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}
            for doc in dataset.documents
        ),
    )
    _write_lines(
        folder / EVAL_FILES[0],
        (
            {
                "question": item.question,
                "relevant_ids": list(item.relevant_ids),
                "answer": item.answer,
            }
            for item in dataset.eval_items
        ),
    )


def _write_lines(path: Path, records: Iterable[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _loads(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit number, [[[[...]]]] nesting
        raise _Invalid(f"invalid JSON ({type(exc).__name__}: {exc})") from None


def _document(value: object) -> Document:
    record = _object(value)
    if "text" not in record:
        raise _Invalid("missing field 'text'")
    metadata: dict[str, str] = {}
    nested = record.get("metadata")
    extra = {key: item for key, item in record.items() if key not in _DOCUMENT_FIELDS}
    if isinstance(nested, dict):
        metadata.update(_metadata(nested))
    elif nested is not None:
        extra["metadata"] = nested
    metadata.update(_metadata(extra))
    return Document(
        id=_id(record.get("id"), "id"),
        text=_string(record["text"], "text"),
        title=_string(_as_text(record.get("title")), "title"),
        metadata=metadata,
    )


def _eval_item(value: object) -> EvalItem:
    record = _object(value)
    if "question" not in record:
        raise _Invalid("missing field 'question'")
    ids = record.get("relevant_ids")
    ids = [] if ids is None else ids
    if not isinstance(ids, list):
        raise _Invalid("'relevant_ids' must be a list of document ids")
    item = EvalItem(
        question=_string(record["question"], "question"),
        relevant_ids=tuple(_id(doc_id, "relevant_ids") for doc_id in ids),
        answer=_string(_as_text(record.get("answer")), "answer"),
    )
    if not item.relevant_ids and not item.answer:
        raise _Invalid("needs 'relevant_ids' or 'answer'")
    return item


def _object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a JSON object, got {type(value).__name__}")
    return value


def _metadata(fields: dict[str, object]) -> dict[str, str]:
    """Metadata values are strings: scalars and nested JSON are kept as their JSON text."""
    return {
        _string(key, "metadata key"): _string(_as_text(value), key)
        for key, value in fields.items()
        if value is not None
    }


def _as_text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _id(value: object, field: str) -> str:
    if value is None or value == "":
        raise _Invalid(f"missing field '{field}'" if field == "id" else f"empty id in '{field}'")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _Invalid(f"'{field}' must hold strings or integers, got {type(value).__name__}")
    return _string(value, field)


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"'{field}' must be a string, got {type(value).__name__}")
    if _SURROGATE.search(value):
        raise _Invalid(f"'{field}' holds an unpaired surrogate escape (\\ud800-\\udfff)")
    return value
