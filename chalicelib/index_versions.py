"""A minion's index versions: one per training, and the alias that picks the live one."""

from __future__ import annotations

import logging

from chalicelib.kb import KnowledgeBaseError, get_knowledge_base
from chalicelib.models import Minion, TrainingJob

log = logging.getLogger(__name__)


def index_name_for(minion: Minion, job_id: int) -> str:
    """Each training builds its own index version; the alias decides which one answers."""
    return f"{minion.kb_alias}-v{job_id}"


def restore_previous_index(job: TrainingJob) -> None:
    """Undo a training that did not finish: the alias goes back, the half-built index goes."""
    if not job.index_name:
        return
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
