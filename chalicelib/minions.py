"""Minions: create and read them, and answer questions from their knowledge bases."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import boto3
from pynamodb.exceptions import DoesNotExist

from chalicelib.config import settings
from chalicelib.embeddings import get_embedder
from chalicelib.errors import Conflict, NotFound, ServiceError, Unavailable
from chalicelib.kb import KnowledgeBaseError, get_knowledge_base
from chalicelib.models import Minion
from chalicelib.retrieval import search

log = logging.getLogger(__name__)


def create_minion(owner: str, name: str) -> Minion:
    minion_id = f"m-{uuid.uuid4().hex[:12]}"
    minion = Minion(id=minion_id, name=name, owner=owner, kb_alias=f"minion-{minion_id}")
    minion.save(condition=Minion.id.does_not_exist())
    return minion


def get_minion(minion_id: str, owner: str) -> Minion:
    """A minion of ``owner``'s; another owner's minion is reported missing, not forbidden."""
    try:
        minion = Minion.get(minion_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"minion {minion_id!r} does not exist") from None
    if minion.owner != owner:
        raise NotFound(f"minion {minion_id!r} does not exist")
    return minion


def query_minion(minion: Minion, question: str, k: int, mode: str) -> list[dict[str, Any]]:
    """Answer from the minion's knowledge base: through the model's function in AWS, else here."""
    request = {"alias": minion.kb_alias, "question": question, "k": k, "mode": mode}
    function = settings().query_function
    if not function:
        return search_alias(**request)
    client = boto3.client("lambda", region_name=settings().region)
    response = client.invoke(FunctionName=function, Payload=json.dumps(request).encode())
    payload = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        log.error("query function failed: %s", payload)
        raise Unavailable("the knowledge base could not answer; retry later")
    if "error" in payload:
        raise ServiceError.from_dict(payload["error"])
    return payload["hits"]


def search_alias(alias: str, question: str, k: int, mode: str) -> list[dict[str, Any]]:
    """Documents that answer ``question``, best first, with their best matching passages."""
    kb = get_knowledge_base()
    if kb.resolve_alias(alias) is None:
        raise Conflict("this minion has no knowledge base yet: train it first")
    try:
        hits = search(kb, alias, question, mode, k, get_embedder())
    except KnowledgeBaseError as exc:
        log.error("search of %s failed: %s", alias, exc)
        raise Unavailable("the knowledge base could not answer; retry later") from exc
    return [
        {
            "doc_id": hit.doc_id,
            "title": hit.title,
            "score": round(hit.score, 6),
            "passages": [
                {"text": chunk.chunk.text, "position": chunk.chunk.position}
                for chunk in hit.chunks[:3]
            ],
        }
        for hit in hits
    ]
