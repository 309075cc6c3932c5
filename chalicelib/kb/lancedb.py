"""Embedded, on-disk knowledge base on LanceDB: the local and default backend.

Layout of the database folder::

    <path>/<index>.lance     one Lance table per index version
    <path>/_aliases.json     {"alias": "index", ...}, replaced atomically
    <path>/_aliases.lock     lock file serialising alias writers (threads and processes)

Each table has the columns ``chunk_id`` (string, the merge key), ``doc_id`` (string),
``position`` (int32), ``title`` (string), ``text`` (string) and ``vector``
(``fixed_size_list<float32>[dimension]``).

Nothing here touches the network: LanceDB runs in-process on local files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.index import FTS
from lancedb.query import BooleanQuery, MatchQuery, Occur

from chalicelib.kb.base import Chunk, ChunkHit, KnowledgeBase, KnowledgeBaseError

try:  # POSIX advisory locks; on other platforms the in-process lock still serialises threads.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

ALIAS_FILE = "_aliases.json"
LOCK_FILE = "_aliases.lock"
TEXT_FIELDS = ("title", "text")
_COLUMNS = ["chunk_id", "doc_id", "position", "title", "text"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Full-text analysis for English BM25, the same for ``title`` and ``text`` and for queries:
# - base_tokenizer "simple": split on whitespace and punctuation ("co-op" -> "co", "op"),
#   which is what Lucene's standard analyzer (OpenSearch's default) roughly does;
# - lower_case: case-insensitive matching;
# - stem (Snowball English): "running"/"runs" -> "run", the usual BM25 baseline
#   (Anserini/BEIR index English with Porter stemming), a recall gain on short queries;
# - remove_stop_words (built-in English list): "the", "and" carry no IDF signal and only
#   lengthen posting lists;
# - ascii_folding: "café" matches "cafe";
# - max_token_length 40: drops base64/URL junk tokens;
# - with_position False: only bag-of-words BM25 is used (no phrase queries), so positions
#   would just make the index bigger and slower to build.
FTS_OPTIONS: dict[str, Any] = {
    "base_tokenizer": "simple",
    "language": "English",
    "lower_case": True,
    "stem": True,
    "remove_stop_words": True,
    "ascii_folding": True,
    "max_token_length": 40,
    "with_position": False,
}


class LanceDBKnowledgeBase(KnowledgeBase):
    """Knowledge base stored in a local LanceDB folder.

    Dense search is an exact (flat) scan with the cosine metric, not an ANN index. For the
    table sizes one minion's knowledge base reaches (thousands to a few hundred thousand
    384-d chunks) a brute-force scan is a few milliseconds to tens of milliseconds, needs no
    training step, can never miss a neighbour (recall is 1.0, so results match exact search
    by construction) and stays correct after every upsert without re-indexing. An IVF/HNSW
    index would only pay off at millions of rows, and would make results approximate.

    BM25 uses LanceDB's native full-text (inverted) index, one per field over ``title`` and
    ``text`` (a native index covers one column), built by :meth:`finalize` with
    :data:`FTS_OPTIONS`. A query is a boolean SHOULD of one match per field, so a chunk's
    score is the sum of its per-field BM25 scores: the "multifield" BM25 of Anserini/BEIR,
    and the same as OpenSearch ``multi_match`` with ``type: most_fields``, which the
    OpenSearch backend sends. Rows upserted after :meth:`finalize` are still searched (LanceDB
    scans unindexed rows), just more slowly until the next :meth:`finalize`.

    Aliases: LanceDB has none, so they live in ``_aliases.json`` in the database folder. A
    writer takes a lock (a thread lock plus ``flock`` on ``_aliases.lock``, so threads and
    processes are serialised), reads the map, writes a temporary file in the same folder,
    fsyncs it and ``os.replace``s it over the old one. ``rename`` is atomic on POSIX, so a
    reader (which takes no lock) sees either the old map or the new one, never a partial file.
    Alias and index names share one namespace, as in OpenSearch.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = lancedb.connect(str(self.path))
        self._alias_path = self.path / ALIAS_FILE
        self._lock_path = self.path / LOCK_FILE
        self._thread_lock = threading.Lock()

    # ----------------------------------------------------------------- index lifecycle

    def create_index(self, name: str, dimension: int) -> None:
        _check_name(name)
        if dimension <= 0:
            raise KnowledgeBaseError(f"dimension must be positive, got {dimension}")
        if name in self._read_aliases():
            raise KnowledgeBaseError(f"{name!r} is already an alias")
        schema = pa.schema(
            [
                pa.field("chunk_id", pa.string(), nullable=False),
                pa.field("doc_id", pa.string(), nullable=False),
                pa.field("position", pa.int32(), nullable=False),
                pa.field("title", pa.string()),
                pa.field("text", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), dimension)),
            ]
        )
        try:
            self._db.create_table(name, schema=schema, mode="create")
        except ValueError as exc:
            if "already exists" in str(exc):
                raise KnowledgeBaseError(f"index {name!r} already exists") from exc
            raise KnowledgeBaseError(f"cannot create index {name!r}: {exc}") from exc

    def delete_index(self, name: str) -> None:
        """Drop the table (a missing one is fine) and the aliases that pointed at it."""
        if not _NAME.match(name):
            return
        try:
            self._db.drop_table(name, ignore_missing=True)
        except (ValueError, OSError, RuntimeError) as exc:
            raise KnowledgeBaseError(f"cannot delete index {name!r}: {exc}") from exc
        with self._alias_lock():
            aliases = self._read_aliases()
            kept = {alias: index for alias, index in aliases.items() if index != name}
            if kept != aliases:
                self._write_aliases(kept)

    def list_indexes(self, prefix: str = "") -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            page = self._db.list_tables(page_token=token)
            names.extend(page.tables)
            token = page.page_token
            if not token:
                break
        return sorted(name for name in names if name.startswith(prefix))

    def finalize(self, index: str) -> None:
        """Compact the table and (re)build the full-text indexes over title and text."""
        table = self._table(index)
        try:
            table.optimize()
            for field in TEXT_FIELDS:
                table.create_index(field, config=FTS(**FTS_OPTIONS), replace=True)
        except (ValueError, OSError, RuntimeError) as exc:
            raise KnowledgeBaseError(f"cannot finalize index {index!r}: {exc}") from exc

    # ------------------------------------------------------------------------- writes

    def upsert(
        self, index: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        if len(chunks) != len(vectors):
            raise KnowledgeBaseError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if not chunks:
            return
        table = self._table(index)
        dimension = table.schema.field("vector").type.list_size
        latest: dict[str, tuple[Chunk, Sequence[float]]] = {}
        for chunk, vector in zip(chunks, vectors, strict=True):
            if len(vector) != dimension:
                raise KnowledgeBaseError(
                    f"vector for {chunk.chunk_id!r} has {len(vector)} dims, "
                    f"index {index!r} has {dimension}"
                )
            latest[chunk.chunk_id] = (chunk, vector)  # the last one wins within a batch
        rows = list(latest.values())
        data = pa.table(
            {
                "chunk_id": pa.array([c.chunk_id for c, _ in rows], pa.string()),
                "doc_id": pa.array([c.doc_id for c, _ in rows], pa.string()),
                "position": pa.array([c.position for c, _ in rows], pa.int32()),
                "title": pa.array([c.title for c, _ in rows], pa.string()),
                "text": pa.array([c.text for c, _ in rows], pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array([float(x) for _, v in rows for x in v], pa.float32()), dimension
                ),
            },
            schema=table.schema,
        )
        try:
            (
                table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data)
            )
        except (ValueError, OSError, RuntimeError) as exc:
            raise KnowledgeBaseError(f"upsert into {index!r} failed: {exc}") from exc

    # ------------------------------------------------------------------------ queries

    def dense_search(self, index: str, vector: Sequence[float], k: int) -> list[ChunkHit]:
        """Exact cosine search; score = cosine similarity = 1 - cosine distance."""
        if k <= 0:
            return []
        table = self._table(index)
        try:
            rows = (
                table.search(list(map(float, vector)), vector_column_name="vector")
                .distance_type("cosine")
                .bypass_vector_index()
                .select([*_COLUMNS, "_distance"])
                .limit(k)
                .to_list()
            )
        except (ValueError, OSError, RuntimeError) as exc:
            raise KnowledgeBaseError(f"dense search on {index!r} failed: {exc}") from exc
        return [ChunkHit(_chunk(row), 1.0 - float(row["_distance"])) for row in rows]

    def bm25_search(self, index: str, query: str, k: int) -> list[ChunkHit]:
        """BM25 summed over title and text; needs :meth:`finalize` to have run once."""
        if k <= 0 or not query.strip():
            return []
        table = self._table(index)
        # Without its inverted indexes LanceDB silently matches nothing: fail loudly instead.
        indexed = {
            column
            for config in table.list_indices()
            if config.index_type == "FTS"
            for column in config.columns
        }
        if not indexed.issuperset(TEXT_FIELDS):
            raise KnowledgeBaseError(
                f"index {index!r} has no full-text index yet; call finalize({index!r}) first"
            )
        fts = BooleanQuery([(Occur.SHOULD, MatchQuery(query, field)) for field in TEXT_FIELDS])
        try:
            rows = table.search(fts).select([*_COLUMNS, "_score"]).limit(k).to_list()
        except (ValueError, OSError, RuntimeError) as exc:
            raise KnowledgeBaseError(f"BM25 search on {index!r} failed: {exc}") from exc
        return [ChunkHit(_chunk(row), float(row["_score"])) for row in rows]

    def count(self, index: str) -> int:
        return int(self._table(index).count_rows())

    # ------------------------------------------------------------------------ aliases

    def set_alias(self, alias: str, index: str) -> str | None:
        _check_name(alias)
        if not self._exists(index):
            raise KnowledgeBaseError(f"index {index!r} does not exist")
        if self._exists(alias):
            raise KnowledgeBaseError(f"{alias!r} is an index, it cannot be an alias")
        with self._alias_lock():
            aliases = self._read_aliases()
            previous = aliases.get(alias)
            if previous != index:
                aliases[alias] = index
                self._write_aliases(aliases)
            return previous

    def remove_alias(self, alias: str) -> str | None:
        with self._alias_lock():
            aliases = self._read_aliases()
            previous = aliases.pop(alias, None)
            if previous is not None:
                self._write_aliases(aliases)
            return previous

    def resolve_alias(self, alias: str) -> str | None:
        return self._read_aliases().get(alias)

    # ---------------------------------------------------------------------- internals

    def _exists(self, name: str) -> bool:
        return _NAME.match(name) is not None and (self.path / f"{name}.lance").is_dir()

    def _table(self, name: str) -> Any:
        """Open a table by index name or alias (opened per call, so other writers are seen)."""
        target = self._read_aliases().get(name, name)
        if not _NAME.match(target):
            raise KnowledgeBaseError(f"no index or alias named {name!r}")
        try:
            return self._db.open_table(target)
        except (ValueError, FileNotFoundError) as exc:
            if target != name:
                raise KnowledgeBaseError(
                    f"alias {name!r} points at missing index {target!r}"
                ) from exc
            raise KnowledgeBaseError(f"no index or alias named {name!r}") from exc

    def _read_aliases(self) -> dict[str, str]:
        try:
            with open(self._alias_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise KnowledgeBaseError(f"alias file {self._alias_path} is unreadable: {exc}") from exc
        if not isinstance(data, dict):
            raise KnowledgeBaseError(f"alias file {self._alias_path} is not a JSON object")
        return {str(key): str(value) for key, value in data.items()}

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        """Write temp file + fsync + os.replace + fsync(dir); call with the alias lock held."""
        fd, tmp = tempfile.mkstemp(prefix=".aliases-", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(aliases, fh, sort_keys=True, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._alias_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path)

    @contextlib.contextmanager
    def _alias_lock(self) -> Iterator[None]:
        with self._thread_lock, open(self._lock_path, "a+") as lock:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _chunk(row: dict[str, Any]) -> Chunk:
    return Chunk(
        doc_id=row["doc_id"],
        position=int(row["position"]),
        text=row["text"] or "",
        title=row["title"] or "",
    )


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise KnowledgeBaseError(
            f"invalid name {name!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )


def _fsync_dir(path: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
