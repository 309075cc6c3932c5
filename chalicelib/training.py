"""The work of the nine training steps. Bookkeeping (status, progress, timing) is the runner's."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import boto3

from chalicelib import datasets
from chalicelib.config import settings
from chalicelib.datasets import Dataset, DatasetError, Limits
from chalicelib.models import RUNNING, Minion, TrainingJob
from chalicelib.runner import StepContext, StepOutcome
from chalicelib.steps import STEP_BY_HANDLER

log = logging.getLogger(__name__)

METRICS_MODE = "hybrid"
SAMPLE_QUERIES = 5


class TrainingCheckFailed(RuntimeError):
    """The new knowledge base is not what the dataset should have produced."""


def _kb() -> Any:
    from chalicelib.kb import get_knowledge_base

    return get_knowledge_base()


def _embedder() -> Any:
    from chalicelib.embeddings import get_embedder

    return get_embedder()


def _minion(job: TrainingJob) -> Minion:
    return Minion.get(job.minion_id, consistent_read=True)


def _refined_dataset(job: TrainingJob) -> Dataset:
    if not job.refined_dataset:
        raise RuntimeError(f"job {job.id} has no refined dataset; step 2 did not run")
    return datasets.load_dataset(job.refined_dataset)


def _evaluate(alias: str, dataset: Dataset, mode: str) -> dict[str, Any]:
    from chalicelib.retrieval import evaluate

    return evaluate(_kb(), alias, dataset.eval_items, _embedder(), mode=mode)


CHUNK_OPTIONS = {"chunk_tokens": "max_tokens", "chunk_overlap": "overlap"}


def _chunk_options(job: TrainingJob) -> dict[str, int]:
    """The job's chunking options, as ``chunk_documents`` names them."""
    options = job.options.as_dict() if job.options else {}
    return {
        CHUNK_OPTIONS[key]: int(value) for key, value in options.items() if key in CHUNK_OPTIONS
    }


def capture_before_metrics(ctx: StepContext) -> StepOutcome:
    """The minion's retrieval quality on this dataset's questions before it is retrained."""
    try:
        dataset = datasets.load_dataset(ctx.job.dataset)
    except DatasetError as exc:
        return StepOutcome(f"no baseline: the dataset could not be read ({exc})")
    if not dataset.eval_items:
        return StepOutcome("no baseline: the dataset has no evaluation questions")
    alias = _minion(ctx.job).kb_alias
    if _kb().resolve_alias(alias) is None:
        zeros = {"ndcg_at_10": 0.0, "recall_at_10": 0.0, "mrr_at_10": 0.0}
        metrics = {**zeros, "queries": len(dataset.eval_items), "mode": METRICS_MODE}
        return StepOutcome(
            "the minion had no knowledge base yet: baseline is zero",
            {"questions": len(dataset.eval_items)},
            {"metrics_before": metrics},
        )
    metrics = _evaluate(alias, dataset, METRICS_MODE)
    return StepOutcome(
        f"nDCG@10 {metrics['ndcg_at_10']:.3f} before training",
        {"questions": len(dataset.eval_items)},
        {"metrics_before": metrics},
    )


def load_dataset(ctx: StepContext) -> StepOutcome:
    """Read, normalise and de-duplicate the dataset; keep the refined copy for later steps."""
    limits = Limits()
    dataset, report = datasets.refine(datasets.load_dataset(ctx.job.dataset, limits), limits)
    key_prefix = f"artifacts/training-jobs/{ctx.job.id}/refined"
    bucket = settings().dataset_bucket
    s3 = boto3.client("s3", region_name=settings().region)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        datasets.write_jsonl(dataset, folder)
        for path in sorted(folder.iterdir()):
            s3.upload_file(str(path), bucket, f"{key_prefix}/{path.name}")
    message = (
        f"{report.documents_kept} of {report.documents_read} documents kept"
        f" ({report.duplicates} duplicates, {report.empty} empty, {report.oversize} oversize"
        f" dropped), {report.eval_kept} evaluation questions"
    )
    counters = {name: value for name, value in report.to_dict().items() if isinstance(value, int)}
    return StepOutcome(
        message,
        counters,
        {"refined_dataset": f"s3://{bucket}/{key_prefix}/", "dataset_report": report.to_dict()},
    )


def create_knowledge_base(ctx: StepContext) -> StepOutcome:
    """A fresh index version, so the minion keeps answering from the old one meanwhile."""
    from chalicelib.embeddings import EMBEDDING_DIMENSION
    from chalicelib.minions import index_name_for

    index = index_name_for(_minion(ctx.job), ctx.job.id)
    if not ctx.record(index_name=index):
        return StepOutcome("the job is no longer running: no index created")
    kb = _kb()
    kb.delete_index(index)
    kb.create_index(index, EMBEDDING_DIMENSION)
    return StepOutcome(f"index {index} created", {"dimension": EMBEDDING_DIMENSION})


def create_embeddings(ctx: StepContext) -> StepOutcome:
    """Chunk, embed and index every document; progress follows the embedding batches."""
    from chalicelib.indexing import index_documents

    dataset = _refined_dataset(ctx.job)
    ctx.report(0.0, documents=len(dataset.documents), chunks_embedded=0)
    stats = index_documents(
        _kb(),
        ctx.job.index_name,
        dataset.documents,
        _embedder(),
        on_progress=lambda fraction, done: ctx.report(fraction, chunks_embedded=done),
        **_chunk_options(ctx.job),
    )
    return StepOutcome(
        f"{stats.chunks} chunks from {stats.documents} documents embedded and indexed",
        {"documents": stats.documents, "chunks": stats.chunks, "chunks_embedded": stats.chunks},
    )


def update_minion(ctx: StepContext) -> StepOutcome:
    """Point the minion's alias at the new index in one atomic swap; remember the old one."""
    from chalicelib.minions import restore_previous_index

    kb = _kb()
    alias = _minion(ctx.job).kb_alias
    if not ctx.record(previous_index=kb.resolve_alias(alias)):
        return StepOutcome("the job is no longer running: the minion was left as it was")
    kb.set_alias(alias, ctx.job.index_name)
    job = TrainingJob.get(ctx.job.id, consistent_read=True)
    if job.status != RUNNING:
        restore_previous_index(job)
        return StepOutcome("the job stopped during the swap: the minion was left as it was")
    return StepOutcome(f"{alias} now answers from {ctx.job.index_name}")


def validate_training(ctx: StepContext) -> StepOutcome:
    """The index holds every chunk, and sample questions get answers through the alias."""
    from chalicelib.retrieval import search

    embedding = STEP_BY_HANDLER["create_embeddings"].index
    expected = int(ctx.job.steps[embedding].counters.as_dict()["chunks"])
    kb = _kb()
    alias = _minion(ctx.job).kb_alias
    indexed = kb.count(alias)
    if indexed != expected:
        raise TrainingCheckFailed(f"the index holds {indexed} chunks; {expected} were embedded")
    dataset = _refined_dataset(ctx.job)
    samples = [item.question for item in dataset.eval_items[:SAMPLE_QUERIES]] or [
        doc.title or doc.text[:200] for doc in dataset.documents[:SAMPLE_QUERIES]
    ]
    embedder = _embedder()
    for question in samples:
        if not search(kb, alias, question, METRICS_MODE, 1, embedder):
            raise TrainingCheckFailed(f"the sample query {question[:80]!r} found nothing")
    return StepOutcome(
        f"{indexed} chunks indexed; {len(samples)} sample queries answered",
        {"chunks_indexed": indexed, "sample_queries": len(samples)},
    )


def run_tests(ctx: StepContext) -> StepOutcome:
    """Every evaluation question, answered by dense and by BM25 retrieval on the new index."""
    dataset = _refined_dataset(ctx.job)
    if not dataset.eval_items:
        return StepOutcome("no evaluation questions in the dataset: nothing to test")
    alias = _minion(ctx.job).kb_alias
    results = {mode: _evaluate(alias, dataset, mode) for mode in ("dense", "bm25")}
    message = ", ".join(f"{mode} nDCG@10 {m['ndcg_at_10']:.3f}" for mode, m in results.items())
    return StepOutcome(message, {"questions": len(dataset.eval_items)}, {"test_results": results})


def capture_after_metrics(ctx: StepContext) -> StepOutcome:
    """The minion's retrieval quality on the same questions, now from the new index."""
    dataset = _refined_dataset(ctx.job)
    if not dataset.eval_items:
        return StepOutcome("no evaluation questions in the dataset: no metrics")
    metrics = _evaluate(_minion(ctx.job).kb_alias, dataset, METRICS_MODE)
    return StepOutcome(
        f"nDCG@10 {metrics['ndcg_at_10']:.3f} after training",
        {"questions": len(dataset.eval_items)},
        {"metrics_after": metrics},
    )


def calculate_improvements(ctx: StepContext) -> StepOutcome:
    """After minus before, for every metric both captured."""
    before = ctx.job.metrics_before.as_dict() if ctx.job.metrics_before else {}
    after = ctx.job.metrics_after.as_dict() if ctx.job.metrics_after else {}
    deltas = {
        name: round(float(after[name]) - float(before[name]), 4)
        for name in after
        if name in before and name != "queries" and isinstance(after[name], (int, float))
    }
    if not deltas:
        return StepOutcome("nothing to compare: no metrics were captured")
    summary = ", ".join(f"{name} {delta:+.3f}" for name, delta in deltas.items())
    return StepOutcome(summary, fields={"improvements": deltas})
