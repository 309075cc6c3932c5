"""Retrieval quality on the whole CISI collection with the embedded knowledge base.

    .venv/bin/python bench/cisi_quality.py [--out bench/RESULTS.md]

Refines CISI (1,460 documents, 76 judged queries), indexes it with the library's defaults into
LanceDB, and prints nDCG@10, Recall@10 and MRR@10 for BM25, dense and hybrid retrieval next to
the reference figures of shared/datasets/cisi/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalicelib import datasets
from chalicelib.embeddings import DIMENSION, get_embedder
from chalicelib.indexing import index_documents
from chalicelib.kb.lancedb import LanceDBKnowledgeBase
from chalicelib.retrieval import evaluate

CISI = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cisi"
REFERENCE = {
    "bm25": (0.364, 0.123, 0.654),
    "dense": (0.421, 0.128, 0.616),
    "hybrid": (0.423, 0.135, 0.653),
}


def measure(kb_path: Path, cisi: Path = CISI) -> tuple[dict[str, dict], float]:
    """Metrics per mode, and the seconds that indexing took."""
    dataset, _ = datasets.refine(datasets.load_dataset(str(cisi)))
    kb = LanceDBKnowledgeBase(kb_path)
    kb.create_index("cisi", DIMENSION)
    embedder = get_embedder()
    started = time.perf_counter()
    index_documents(kb, "cisi", dataset.documents, embedder)
    seconds = time.perf_counter() - started
    results = {
        mode: evaluate(kb, "cisi", dataset.eval_items, embedder, mode=mode) for mode in REFERENCE
    }
    return results, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results, seconds = measure(Path(tmp))
    lines = [
        f"## CISI retrieval quality, {datetime.date.today()}",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; indexing took {seconds:.1f} s.",
        "",
        "| retrieval | nDCG@10 | Recall@10 | MRR@10 | reference nDCG@10 |",
        "|---|---|---|---|---|",
    ]
    for mode, metrics in results.items():
        lines.append(
            f"| {mode} | {metrics['ndcg_at_10']:.3f} | {metrics['recall_at_10']:.3f} | "
            f"{metrics['mrr_at_10']:.3f} | {REFERENCE[mode][0]:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
