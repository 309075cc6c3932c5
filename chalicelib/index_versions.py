"""A minion's index versions: one per training, and the alias that picks the live one."""

from __future__ import annotations

import logging

from chalicelib.kb import KnowledgeBaseError, get_knowledge_base
from chalicelib.models import Minion, TrainingJob

log = logging.getLogger(__name__)


def minion_alias(job: TrainingJob) -> str:
    """The alias the job's minion answers from."""
    return Minion.get(job.minion_id, consistent_read=True).kb_alias


def _versions_prefix(alias: str) -> str:
    return f"{alias}-v"


def index_name_for(job: TrainingJob) -> str:
    """Each training builds its own index version; the alias decides which one answers."""
    return f"{_versions_prefix(minion_alias(job))}{job.id}"


def restore_previous_index(job: TrainingJob) -> None:
    """Undo a training that did not finish: the alias goes back, the half-built index goes."""
    if not job.index_name:
        return
    kb = get_knowledge_base()
    alias = minion_alias(job)
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
    kb = get_knowledge_base()
    keep = {job.index_name, job.previous_index}
    versions = kb.list_indexes(_versions_prefix(minion_alias(job)))
    stale = [name for name in versions if name not in keep]
    for name in stale:
        try:
            kb.delete_index(name)
        except KnowledgeBaseError as exc:
            log.warning("job %s: old index %s not deleted: %s", job.id, name, exc)
    return stale
