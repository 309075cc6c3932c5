"""Minions: create and read them, and keep the knowledge-base alias each one answers from."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import boto3
from pynamodb.exceptions import DoesNotExist

from chalicelib.config import settings
from chalicelib.errors import Conflict, NotFound, ServiceError, Unavailable
from chalicelib.kb.base import KnowledgeBaseError
from chalicelib.models import Minion, TrainingJob

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


def index_name_for(minion: Minion, job_id: int) -> str:
    """Each training builds its own index version; the alias decides which one answers."""
    return f"{minion.kb_alias}-v{job_id}"


def restore_previous_index(job: TrainingJob) -> None:
    """Undo a training that did not finish: the alias goes back, the half-built index goes."""
    if not job.index_name:
        return
    from chalicelib.kb import get_knowledge_base

    kb = get_knowledge_base()
    alias = Minion.get(job.minion_id).kb_alias
    if kb.resolve_alias(alias) == job.index_name:
        if job.previous_index:
            kb.set_alias(alias, job.previous_index)
        else:
            kb.remove_alias(alias)
    kb.delete_index(job.index_name)
    log.info("job %s: %s restored to %s", job.id, alias, job.previous_index)


def prune_index_versions(job: TrainingJob) -> list[str]:
    """After a success keep the new version and the one before it (a manual way back).

    Best effort: a version left behind costs storage, not correctness."""
    from chalicelib.kb import get_knowledge_base

    kb = get_knowledge_base()
    alias = Minion.get(job.minion_id).kb_alias
    keep = {job.index_name, job.previous_index}
    stale = [name for name in kb.list_indexes(f"{alias}-v") if name not in keep]
    for name in stale:
        try:
            kb.delete_index(name)
        except KnowledgeBaseError as exc:
            log.warning("job %s: old index %s not deleted: %s", job.id, name, exc)
    return stale


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
    from chalicelib.embeddings import get_embedder
    from chalicelib.kb import get_knowledge_base
    from chalicelib.retrieval import search

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
