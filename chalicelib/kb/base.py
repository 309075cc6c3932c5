"""The knowledge-base interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chunk:
    """A piece of one document, the unit that is embedded and indexed."""

    doc_id: str
    position: int
    text: str
    title: str = ""

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.position}"


@dataclass(frozen=True)
class ChunkHit:
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class DocumentHit:
    """A document ranked by its best chunks; ``chunks`` are the matching chunks, best first."""

    doc_id: str
    title: str
    score: float
    chunks: tuple[ChunkHit, ...] = field(default=())


class KnowledgeBaseError(RuntimeError):
    """A knowledge-base operation failed (missing index, unreachable cluster, bad alias)."""


class KnowledgeBase(ABC):
    """Versioned indexes of embedded chunks, and aliases that point minions at one version."""

    @abstractmethod
    def create_index(self, name: str, dimension: int) -> None:
        """Create an empty index version; fails if it already exists."""

    @abstractmethod
    def upsert(
        self, index: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Insert or replace chunks (by chunk id) with their vectors."""

    @abstractmethod
    def dense_search(self, index: str, vector: Sequence[float], k: int) -> list[ChunkHit]:
        """k nearest chunks by cosine similarity; ``index`` may be an alias."""

    @abstractmethod
    def bm25_search(self, index: str, query: str, k: int) -> list[ChunkHit]:
        """k best chunks by BM25 over title and text; ``index`` may be an alias."""

    @abstractmethod
    def count(self, index: str) -> int:
        """Number of chunks in an index (or the index an alias points at)."""

    @abstractmethod
    def delete_index(self, name: str) -> None:
        """Delete an index version; deleting a missing one is not an error."""

    @abstractmethod
    def set_alias(self, alias: str, index: str) -> str | None:
        """Point ``alias`` at ``index`` atomically; returns the index it pointed at before."""

    @abstractmethod
    def remove_alias(self, alias: str) -> str | None:
        """Remove ``alias``; returns the index it pointed at (None, and no error, if unset)."""

    @abstractmethod
    def resolve_alias(self, alias: str) -> str | None:
        """The index an alias points at, or None."""

    @abstractmethod
    def list_indexes(self, prefix: str = "") -> list[str]:
        """Index versions whose name starts with ``prefix``."""

    @abstractmethod
    def finalize(self, index: str) -> None:
        """Make an index searchable after its last upsert (build deferred indexes, refresh)."""

    def hybrid_search(
        self, index: str, query: str, vector: Sequence[float], k: int, depth: int = 100
    ) -> list[ChunkHit]:
        """BM25 and dense fused client-side by reciprocal rank (same fusion on every backend)."""
        from chalicelib.kb.fusion import reciprocal_rank_fusion

        dense = self.dense_search(index, vector, depth)
        sparse = self.bm25_search(index, query, depth)
        return reciprocal_rank_fusion([dense, sparse])[:k]
