"""Overhead of the library's embedder over calling SentenceTransformer.encode directly.

Loads CISI, chunks it with the library defaults, then in the same process times
(a) ``Embedder.embed`` (length-sorted batches, a progress callback after each) and
(b) ``model.encode`` on the same texts with the same batch size and normalisation.
Each run embeds all texts with both, block by block, the two back to back on every block in
alternating order (a b, b a, ...), so load from other processes hits both alike; the medians
of the run totals give the overhead. Also reports, as a sanity
check of chunking and vectors, dense retrieval quality on CISI from the vectors just computed
(exact cosine in memory, chunks aggregated to documents by their best chunk).

    HF_HUB_OFFLINE=1 python bench/embedding_overhead.py [--repeats 3] [--no-write]

Appends a dated section to bench/RESULTS.md unless --no-write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chalicelib.chunking import (  # noqa: E402
    DEFAULT_MAX_TOKENS,
    DEFAULT_OVERLAP,
    chunk_documents,
    embedding_text,
)
from chalicelib.datasets import load_dataset  # noqa: E402
from chalicelib.embeddings import DEFAULT_BATCH_SIZE, get_embedder  # noqa: E402
from chalicelib.kb.base import ChunkHit  # noqa: E402
from chalicelib.kb.fusion import aggregate_documents  # noqa: E402
from chalicelib.metrics import retrieval_metrics  # noqa: E402

CISI = Path(os.environ.get("CISI_PATH", REPO.parent / "shared" / "datasets" / "cisi"))
RESULTS = REPO / "bench" / "RESULTS.md"


def dense_quality(dataset, chunks, vectors, embedder) -> dict:
    import numpy as np

    items = [item for item in dataset.eval_items if item.relevant_ids]
    questions = embedder.embed([item.question for item in items])
    rankings = []
    for row in questions @ vectors.T:
        top = np.argsort(-row)[:100]
        hits = [ChunkHit(chunks[i], float(row[i])) for i in top]
        rankings.append([doc.doc_id for doc in aggregate_documents(hits, 10)])
    return retrieval_metrics(rankings, [item.relevant_ids for item in items]).to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=str(CISI))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=8, help="interleaving blocks per run")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    import numpy as np
    import sentence_transformers
    import torch

    started = dt.datetime.now().astimezone()
    dataset = load_dataset(args.dataset)
    embedder = get_embedder()
    model = embedder.model

    t0 = time.perf_counter()
    chunks = chunk_documents(dataset.documents, embedder.tokenizer)
    chunk_seconds = time.perf_counter() - t0
    texts = [embedding_text(chunk) for chunk in chunks]
    tokens = embedder.count_tokens(texts)
    print(
        f"{len(dataset.documents)} documents -> {len(chunks)} chunks in {chunk_seconds:.2f}s "
        f"(max_tokens={DEFAULT_MAX_TOKENS}, overlap={DEFAULT_OVERLAP}); tokens/chunk "
        f"mean {statistics.mean(tokens):.0f}, max {max(tokens)}"
    )

    # Warm up both paths (first-call allocations, thread pools) on a slice.
    embedder.embed(texts[:64], batch_size=args.batch_size)
    model.encode(texts[:64], batch_size=args.batch_size, normalize_embeddings=True)

    def library(block: list[str]):
        progress: list[float] = []
        vectors = embedder.embed(block, batch_size=args.batch_size, on_progress=progress.append)
        assert progress[-1] == 1.0
        return vectors

    def direct(block: list[str]):
        return model.encode(
            block, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
        )

    # Each run embeds every text once with each path. The texts are taken in blocks and the
    # two paths run back to back on each block, in alternating order, so that load from other
    # processes on the machine falls on both alike; a run's time is the sum over its blocks.
    size = -(-len(texts) // args.blocks)
    blocks = [texts[start : start + size] for start in range(0, len(texts), size)]
    paths = {"library": library, "direct": direct}
    wall: dict[str, list[float]] = {"library": [], "direct": []}
    cpu: dict[str, list[float]] = {"library": [], "direct": []}
    ratios: list[float] = []
    outputs: dict[str, list] = {}
    load_before = os.getloadavg()
    for run in range(args.repeats):
        totals = {name: [0.0, 0.0] for name in paths}
        outputs = {name: [] for name in paths}
        for b, block in enumerate(blocks):
            order = ("library", "direct") if (run + b) % 2 == 0 else ("direct", "library")
            block_wall = {}
            for name in order:
                start, start_cpu = time.perf_counter(), time.process_time()
                outputs[name].append(paths[name](block))
                block_wall[name] = time.perf_counter() - start
                totals[name][0] += block_wall[name]
                totals[name][1] += time.process_time() - start_cpu
            ratios.append(block_wall["library"] / block_wall["direct"])
        for name, (seconds, cpu_seconds) in totals.items():
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
        print(
            f"run {run + 1}: library {totals['library'][0]:.2f}s, direct "
            f"{totals['direct'][0]:.2f}s",
            flush=True,
        )
    load_after = os.getloadavg()

    library_vectors = np.concatenate(outputs["library"])
    max_diff = float(np.abs(library_vectors - np.concatenate(outputs["direct"])).max())
    lib = statistics.median(wall["library"])
    raw = statistics.median(wall["direct"])
    overhead = (lib / raw - 1) * 100
    cpu_overhead = (statistics.median(cpu["library"]) / statistics.median(cpu["direct"]) - 1) * 100
    paired = (statistics.median(ratios) - 1) * 100
    quality = dense_quality(dataset, chunks, library_vectors, embedder)

    machine = (
        f"{platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, sentence-transformers {sentence_transformers.__version__}"
    )
    lines = [
        f"## Embedding overhead, {started:%Y-%m-%d %H:%M %Z}",
        "",
        f"- machine: {machine}",
        f"- data: {Path(args.dataset).name}, {len(dataset.documents)} documents -> "
        f"{len(chunks)} chunks (max_tokens {DEFAULT_MAX_TOKENS} incl. title and "
        f"[CLS]/[SEP], overlap {DEFAULT_OVERLAP}); chunking took {chunk_seconds:.2f}s; "
        f"tokens per embedded chunk mean {statistics.mean(tokens):.0f}, max {max(tokens)}",
        f"- batch size {args.batch_size}, normalize_embeddings=True; {args.repeats} runs of "
        f"each path over all texts, interleaved in {len(blocks)} blocks with alternating order; "
        f"medians; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after",
        f"- library `Embedder.embed`: {lib:.2f}s (runs: "
        f"{', '.join(f'{t:.2f}' for t in wall['library'])}); "
        f"{len(texts) / lib:.1f} chunks/s",
        f"- direct `SentenceTransformer.encode`: {raw:.2f}s (runs: "
        f"{', '.join(f'{t:.2f}' for t in wall['direct'])}); "
        f"{len(texts) / raw:.1f} chunks/s",
        f"- **overhead: {overhead:+.1f}%** wall time (limit +10%); {cpu_overhead:+.1f}% process "
        f"CPU time; {paired:+.1f}% median of the {len(ratios)} paired block ratios; "
        f"max |difference| between the two outputs {max_diff:.1e}",
        f"- sanity check, dense retrieval from these vectors (exact cosine over chunks, best "
        f"chunk per document, {quality['queries']} judged queries): nDCG@10 "
        f"{quality['ndcg_at_10']:.3f}, Recall@10 {quality['recall_at_10']:.3f}, MRR@10 "
        f"{quality['mrr_at_10']:.3f} (README reference, whole documents: 0.421 / 0.128 / 0.616)",
        "",
    ]
    print("\n".join(lines))
    if not args.no_write:
        header = "" if RESULTS.exists() else "# Benchmark results\n\n"
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(header + "\n".join(lines) + "\n")
        print(f"appended to {RESULTS}")
    if overhead >= 10:
        sys.exit(f"overhead {overhead:.1f}% is over the 10% limit")


if __name__ == "__main__":
    main()
