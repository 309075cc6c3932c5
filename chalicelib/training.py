"""The work of the nine training steps. Bookkeeping (status, progress, timing) is the runner's."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from chalicelib import datasets
from chalicelib.config import settings
from chalicelib.datasets import Dataset, DatasetError
from chalicelib.embeddings import DIMENSION, Embedder, get_embedder
from chalicelib.index_versions import index_name_for, minion_alias, restore_previous_index
from chalicelib.indexing import index_documents
from chalicelib.kb import KnowledgeBase, get_knowledge_base
from chalicelib.metrics import RetrievalMetrics
from chalicelib.models import RUNNING, TrainingJob
from chalicelib.retrieval import evaluate, search
from chalicelib.runner import StepContext, StepOutcome
from chalicelib.steps import STEP_BY_HANDLER

log = logging.getLogger(__name__)

METRICS_MODE = "hybrid"
TEST_MODES = ("dense", "bm25")
SAMPLE_DOCUMENTS = 10
SAMPLE_DEPTH = 10
COUNT_SETTLE_SECONDS = 60
COUNT_POLL_SECONDS = 2
CHUNK_OPTIONS = {"chunk_tokens": "max_tokens", "chunk_overlap": "overlap"}


class TrainingCheckFailed(RuntimeError):
    """The new knowledge base is not what the dataset should have produced."""


def _refined_dataset(job: TrainingJob) -> Dataset:
    if not job.refined_dataset:
        raise RuntimeError(f"job {job.id} has no refined dataset; step 2 did not run")
    return datasets.load_dataset(job.refined_dataset)


def _evaluate(kb: KnowledgeBase, alias: str, dataset: Dataset, mode: str) -> dict[str, Any]:
    return evaluate(kb, alias, dataset.eval_items, get_embedder(), mode=mode)


def _chunk_options(job: TrainingJob) -> dict[str, int]:
    """The job's chunking options, as ``chunk_documents`` names them."""
    options = job.options.as_dict() if job.options else {}
    return {
        CHUNK_OPTIONS[key]: int(value) for key, value in options.items() if key in CHUNK_OPTIONS
    }


def capture_before_metrics(ctx: StepContext) -> StepOutcome:
    """The minion's retrieval quality on this dataset's questions before it is retrained.

    The questions are refined exactly as step 2 will refine them (refinement is deterministic),
    so before and after are measured on the same questions.
    """
    try:
        dataset, _ = datasets.refine(datasets.load_dataset(ctx.job.dataset))
    except DatasetError as exc:
        return StepOutcome(f"no baseline: the dataset could not be read ({exc})")
    questions = {"questions": len(dataset.eval_items)}
    if not dataset.eval_items:
        return StepOutcome("no baseline: the dataset has no evaluation questions")
    kb = get_knowledge_base()
    alias = minion_alias(ctx.job)
    if kb.resolve_alias(alias) is None:
        judged = sum(1 for item in dataset.eval_items if item.relevant_ids)
        metrics = {**RetrievalMetrics(0.0, 0.0, 0.0, judged).to_dict(), "mode": METRICS_MODE}
        return StepOutcome(
            "the minion had no knowledge base yet: baseline is zero",
            questions,
            {"metrics_before": metrics},
        )
    metrics = _evaluate(kb, alias, dataset, METRICS_MODE)
    return StepOutcome(
        f"nDCG@10 {metrics['ndcg_at_10']:.3f} before training",
        questions,
        {"metrics_before": metrics},
    )


def load_dataset(ctx: StepContext) -> StepOutcome:
    """Read, normalise and de-duplicate the dataset; keep the refined copy for later steps."""
    dataset, report = datasets.refine(datasets.load_dataset(ctx.job.dataset))
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
    """A new index version, so the minion keeps answering from the old one meanwhile.

    A retried step finds its index already there and leaves it alone.
    """
    index = index_name_for(ctx.job)
    if not ctx.record(index_name=index):
        return StepOutcome("the job is no longer running: no index created")
    kb = get_knowledge_base()
    if index in kb.list_indexes(index):
        return StepOutcome(f"index {index} already created", {"dimension": DIMENSION})
    kb.create_index(index, DIMENSION)
    return StepOutcome(f"index {index} created", {"dimension": DIMENSION})


def create_embeddings(ctx: StepContext) -> StepOutcome:
    """Chunk, embed and index every document; progress follows the embedding batches."""
    dataset = _refined_dataset(ctx.job)
    ctx.report(0.0, documents=len(dataset.documents), chunks_embedded=0)
    stats = index_documents(
        get_knowledge_base(),
        ctx.job.index_name,
        dataset.documents,
        get_embedder(),
        on_progress=lambda fraction, done: ctx.report(fraction, chunks_embedded=done),
        **_chunk_options(ctx.job),
    )
    return StepOutcome(
        f"{stats.chunks} chunks from {stats.documents} documents embedded and indexed",
        {"documents": stats.documents, "chunks": stats.chunks, "chunks_embedded": stats.chunks},
    )


def update_minion(ctx: StepContext) -> StepOutcome:
    """Point the minion's alias at the new index in one atomic swap; remember the old one."""
    kb = get_knowledge_base()
    alias = minion_alias(ctx.job)
    current = kb.resolve_alias(alias)
    if current != ctx.job.index_name and not ctx.record(previous_index=current):
        return StepOutcome("the job is no longer running: the minion was left as it was")
    kb.set_alias(alias, ctx.job.index_name)
    job = TrainingJob.get(ctx.job.id, consistent_read=True)
    if job.status != RUNNING:
        restore_previous_index(job)
        return StepOutcome("the job stopped during the swap: the minion was left as it was")
    return StepOutcome(f"{alias} now answers from {ctx.job.index_name}")


def validate_training(ctx: StepContext) -> StepOutcome:
    """The alias reaches every chunk, and documents are found by their own titles."""
    embedding = STEP_BY_HANDLER["create_embeddings"].index
    expected = int(ctx.job.steps[embedding].counters.as_dict()["chunks"])
    kb = get_knowledge_base()
    alias = minion_alias(ctx.job)
    indexed = _settled_count(kb, alias, expected)
    if indexed != expected:
        raise TrainingCheckFailed(f"the index holds {indexed} chunks; {expected} were embedded")
    samples = [doc for doc in _refined_dataset(ctx.job).documents if doc.title]
    samples = samples[:SAMPLE_DOCUMENTS]
    _check_samples(kb, alias, samples, get_embedder())
    return StepOutcome(
        f"{indexed} chunks indexed; {len(samples)} documents found by their titles",
        {"chunks_indexed": indexed, "sample_queries": len(samples)},
    )


def _settled_count(kb: KnowledgeBase, alias: str, expected: int) -> int:
    """The alias's chunk count, waiting a little for it to reach ``expected``: OpenSearch
    Serverless makes new documents countable only after a few seconds."""
    deadline = time.monotonic() + COUNT_SETTLE_SECONDS
    while (indexed := kb.count(alias)) < expected and time.monotonic() < deadline:
        time.sleep(COUNT_POLL_SECONDS)
    return indexed


def _check_samples(kb: KnowledgeBase, alias: str, samples: list[Any], embedder: Embedder) -> None:
    """Most sample documents must come back for their own title (titles can be generic, so
    not every one has to): an index that lost its text or vectors fails this."""
    missed = []
    for doc in samples:
        hits = search(kb, alias, doc.title, METRICS_MODE, SAMPLE_DEPTH, embedder)
        if doc.id not in {hit.doc_id for hit in hits}:
            missed.append(doc.id)
    if len(missed) * 2 > len(samples):
        raise TrainingCheckFailed(
            f"documents {', '.join(missed)} are not among the top {SAMPLE_DEPTH} results"
            " for their own titles"
        )


def run_tests(ctx: StepContext) -> StepOutcome:
    """Every evaluation question, answered by dense and by BM25 retrieval on the new index."""
    dataset = _refined_dataset(ctx.job)
    if not dataset.eval_items:
        return StepOutcome("no evaluation questions in the dataset: nothing to test")
    kb = get_knowledge_base()
    alias = minion_alias(ctx.job)
    results = {mode: _evaluate(kb, alias, dataset, mode) for mode in TEST_MODES}
    message = ", ".join(f"{mode} nDCG@10 {m['ndcg_at_10']:.3f}" for mode, m in results.items())
    return StepOutcome(message, {"questions": len(dataset.eval_items)}, {"test_results": results})


def capture_after_metrics(ctx: StepContext) -> StepOutcome:
    """The minion's retrieval quality on the same questions, now from the new index."""
    dataset = _refined_dataset(ctx.job)
    if not dataset.eval_items:
        return StepOutcome("no evaluation questions in the dataset: no metrics")
    metrics = _evaluate(get_knowledge_base(), minion_alias(ctx.job), dataset, METRICS_MODE)
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
