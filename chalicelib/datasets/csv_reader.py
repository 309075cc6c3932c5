"""CSV datasets: a header row with a ``text`` column, optional ``id`` and ``title``; any other
column goes to the document's metadata. Without an ``id`` column, a row's line number is its id."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from chalicelib.datasets.base import (
    Dataset,
    DatasetError,
    DatasetReader,
    Document,
    Skipped,
    read_text,
)

_FIELDS = ("id", "title", "text")


class CsvReader(DatasetReader):
    @classmethod
    def accepts(cls, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == ".csv"

    def read(self, path: Path) -> Dataset:
        name = path.name
        text = read_text(path, name, self.limits)
        # csv refuses fields over 128 KiB by default; a document may be longer, never the file.
        csv.field_size_limit(max(csv.field_size_limit(), self.limits.max_file_bytes))
        # strict: an unbalanced quote is an error, not the rest of the file read as one field.
        rows = csv.reader(io.StringIO(text, newline=""), strict=True)
        documents: list[Document] = []
        skipped: list[Skipped] = []
        try:
            keys = _keys(next((row for row in rows if row), []), name)
            next_line = rows.line_num + 1
            for row in rows:
                line, next_line = next_line, rows.line_num + 1
                source = f"{name}:{line}"
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(keys):
                    skipped.append(Skipped(source, f"expected {len(keys)} fields, got {len(row)}"))
                    continue
                record = dict(zip(keys, row, strict=True))
                doc_id = record.pop("id", str(line))
                if not doc_id.strip():
                    skipped.append(Skipped(source, "empty 'id'"))
                    continue
                text = record.pop("text")
                title = record.pop("title", "")
                documents.append(Document(id=doc_id, text=text, title=title, metadata=record))
        except csv.Error as exc:
            raise DatasetError(f"{name}:{rows.line_num}: malformed CSV ({exc})") from None
        return Dataset(documents, [], skipped)


def _keys(header: list[str], name: str) -> list[str]:
    """Column keys: id/title/text matched case-insensitively, the rest kept as metadata keys."""
    if not header:
        raise DatasetError(f"{name}: empty file; expected a header row with a 'text' column")
    columns = [cell.strip() or f"column {number}" for number, cell in enumerate(header, 1)]
    keys = [column.lower() if column.lower() in _FIELDS else column for column in columns]
    if "text" not in keys:
        raise DatasetError(
            f"{name}: the header has no 'text' column (it has: {', '.join(columns)})"
        )
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise DatasetError(f"{name}: the header repeats the column(s) {', '.join(repeated)}")
    return keys
