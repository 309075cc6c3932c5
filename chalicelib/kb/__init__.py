"""Knowledge bases: the interface, and a factory for the backend the settings choose.

Backends are imported lazily, so a process that only needs the types (the API) never loads
lancedb/pyarrow or opensearch-py.
"""

from __future__ import annotations

import threading
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

_cache: dict[tuple[object, ...], KnowledgeBase] = {}
_cache_lock = threading.Lock()


def get_knowledge_base(settings: Settings | None = None) -> KnowledgeBase:
    """The knowledge base for ``settings`` (default: from the environment), one per process
    and configuration, so clients and connections are reused across Lambda invocations."""
    if settings is None:
        from chalicelib.config import settings as load_settings

        settings = load_settings()
    backend = settings.kb_backend
    if backend == "lancedb":
        key: tuple[object, ...] = (backend, str(settings.lancedb_path))
    elif backend == "opensearch":
        key = (backend, settings.opensearch_url, settings.opensearch_service, settings.region)
    else:
        raise KnowledgeBaseError(f"unknown KB_BACKEND {backend!r}: use 'lancedb' or 'opensearch'")
    with _cache_lock:
        kb = _cache.get(key)
        if kb is None:
            kb = _cache[key] = _build(settings)
        return kb


def reset_knowledge_base_cache() -> None:
    """Forget cached knowledge bases (tests, or after the environment changed)."""
    with _cache_lock:
        _cache.clear()


def _build(settings: Settings) -> KnowledgeBase:
    if settings.kb_backend == "lancedb":
        from chalicelib.kb.lancedb import LanceDBKnowledgeBase

        return LanceDBKnowledgeBase(settings.lancedb_path)
    from chalicelib.kb.opensearch import OpenSearchKnowledgeBase

    return OpenSearchKnowledgeBase.from_settings(settings)
