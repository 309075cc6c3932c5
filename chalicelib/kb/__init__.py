"""Knowledge bases: the interface, and a factory for the backend the settings choose.

Backends are imported lazily, so a process that only needs the types (the API) never loads
lancedb/pyarrow or opensearch-py.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from chalicelib.kb.base import Chunk, ChunkHit, DocumentHit, KnowledgeBase, KnowledgeBaseError

if TYPE_CHECKING:
    from chalicelib.config import Settings

__all__ = [
    "Chunk",
    "ChunkHit",
    "DocumentHit",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "get_knowledge_base",
    "reset_knowledge_base_cache",
]


def get_knowledge_base(settings: Settings | None = None) -> KnowledgeBase:
    """The knowledge base for ``settings`` (default: from the environment), one per process
    and configuration, so clients and connections are reused across Lambda invocations."""
    if settings is None:
        from chalicelib.config import settings as load_settings

        settings = load_settings()
    return _build(settings)


def reset_knowledge_base_cache() -> None:
    """Forget cached knowledge bases (tests, or after the environment changed)."""
    _build.cache_clear()


@functools.cache
def _build(settings: Settings) -> KnowledgeBase:
    if settings.kb_backend == "lancedb":
        from chalicelib.kb.lancedb import LanceDBKnowledgeBase

        return LanceDBKnowledgeBase(settings.lancedb_path)
    if settings.kb_backend == "opensearch":
        from chalicelib.kb.opensearch import OpenSearchKnowledgeBase

        return OpenSearchKnowledgeBase.from_settings(settings)
    raise KnowledgeBaseError(
        f"unknown KB_BACKEND {settings.kb_backend!r}: use 'lancedb' or 'opensearch'"
    )
