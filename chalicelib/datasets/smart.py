"""SMART test collections such as CISI: ``X.ALL`` documents, ``X.QRY`` queries, ``X.REL``
relevance judgments (``query_id doc_id ...`` per line; every listed pair is relevant).

Each record starts with ``.I <id>``; the fields after it (``.T`` title, ``.A`` authors, ``.W``
text, ``.X`` cross-references, ...) each run until the next line that starts with a dot tag.
Only queries with judgments become eval items: a query nobody judged cannot score retrieval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.datasets.base import (
    Dataset,
    DatasetError,
    DatasetReader,
    Document,
    EvalItem,
    Skipped,
    read_text,
)

_TAG = re.compile(r"\.([A-Z])(?:\s+(.*))?")
# Fields kept as metadata; .X (citation counts) is dropped, .T and .W are the title and text.
_METADATA = {"A": "authors", "B": "publication", "K": "keywords", "C": "categories"}


@dataclass
class _Record:
    id: str
    source: str
    fields: dict[str, list[str]] = field(default_factory=dict)

    def joined(self, tag: str, separator: str = " ") -> str:
        return separator.join(line.strip() for line in self.fields.get(tag, []) if line.strip())


class SmartReader(DatasetReader):
    @classmethod
    def accepts(cls, path: Path) -> bool:
        if path.is_dir():
            return any(_has_suffix(child, ".ALL") for child in path.iterdir())
        return _has_suffix(path, ".ALL")

    def read(self, path: Path) -> Dataset:
        documents_file = self._documents_file(path)
        skipped: list[Skipped] = []
        documents = [
            document
            for record in self._records(documents_file, skipped)
            if (document := _document(record, skipped)) is not None
        ]
        queries_file = _sibling(documents_file, ".QRY")
        judgments_file = _sibling(documents_file, ".REL")
        eval_items: list[EvalItem] = []
        if judgments_file is not None:
            queries = self._records(queries_file, skipped) if queries_file else []
            eval_items = self._eval_items(queries, judgments_file, skipped)
        return Dataset(documents, eval_items, skipped)

    @staticmethod
    def _documents_file(path: Path) -> Path:
        if not path.is_dir():
            return path
        found = sorted(child for child in path.iterdir() if _has_suffix(child, ".ALL"))
        if len(found) != 1:
            names = ", ".join(child.name for child in found) or "none"
            raise DatasetError(f"{path.name}: expected one SMART .ALL file, found {names}")
        return found[0]

    def _records(self, path: Path, skipped: list[Skipped]) -> list[_Record]:
        records: list[_Record] = []
        current: _Record | None = None
        tag = ""
        for number, line in enumerate(read_text(path, path.name, self.limits).splitlines(), 1):
            match = _TAG.fullmatch(line.rstrip())
            if match and match[1] == "I":
                doc_id = (match[2] or "").strip()
                current = _Record(doc_id, f"{path.name}:{number}") if doc_id else None
                if current is None:
                    skipped.append(Skipped(f"{path.name}:{number}", "'.I' without an id"))
                else:
                    records.append(current)
                tag = ""
            elif match and current is not None:
                tag = match[1]
                current.fields.setdefault(tag, []).append(match[2] or "")
            elif tag and current is not None:
                current.fields[tag].append(line)
            elif line.strip() and current is None and not records:
                skipped.append(
                    Skipped(f"{path.name}:{number}", "text before the first '.I' record")
                )
        if not records:
            raise DatasetError(f"{path.name}: no '.I <id>' record; not a SMART file")
        return records

    def _eval_items(
        self, queries: list[_Record], judgments_file: Path, skipped: list[Skipped]
    ) -> list[EvalItem]:
        judged: dict[str, dict[str, None]] = {}  # query id -> doc ids, ordered and unique
        text = read_text(judgments_file, judgments_file.name, self.limits)
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if len(parts) == 1:
                skipped.append(
                    Skipped(f"{judgments_file.name}:{number}", "expected 'query_id doc_id ...'")
                )
            elif parts:
                judged.setdefault(parts[0], {})[parts[1]] = None
        eval_items = []
        for query in queries:
            if query.id not in judged:
                continue
            question = "\n\n".join(part for part in (query.joined("T"), _body(query)) if part)
            if not question:
                skipped.append(Skipped(query.source, f"query {query.id} has no .T or .W text"))
                continue
            eval_items.append(EvalItem(question, relevant_ids=tuple(judged[query.id])))
        known = {query.id for query in queries}
        for query_id in sorted(judged.keys() - known):
            skipped.append(
                Skipped(judgments_file.name, f"judgments for query {query_id}, which has no query")
            )
        return eval_items


def _document(record: _Record, skipped: list[Skipped]) -> Document | None:
    if "W" not in record.fields:
        skipped.append(Skipped(record.source, f"document {record.id} has no .W text"))
        return None
    metadata = {
        key: record.joined(tag, "; " if tag == "A" else " ")
        for tag, key in _METADATA.items()
        if record.joined(tag)
    }
    return Document(id=record.id, text=_body(record), title=record.joined("T"), metadata=metadata)


def _body(record: _Record) -> str:
    """The .W text with its line breaks; refine() cleans up the whitespace."""
    return "\n".join(record.fields.get("W", [])).strip()


def _sibling(documents_file: Path, suffix: str) -> Path | None:
    """The ``X.QRY`` or ``X.REL`` beside ``X.ALL``, whatever the case of its suffix."""
    for child in sorted(documents_file.parent.iterdir()):
        if child.stem == documents_file.stem and _has_suffix(child, suffix):
            return child
    return None


def _has_suffix(path: Path, suffix: str) -> bool:
    return path.is_file() and path.suffix.upper() == suffix
