"""Training datasets: read them from a path or S3, refine them, store the refined copy.

dataset = load_dataset("s3://bucket/datasets/cisi/")
refined, report = refine(dataset)
write_jsonl(refined, folder)  # load_dataset(folder) reads it back unchanged
"""

from chalicelib.datasets.base import Dataset, DatasetError, Document, EvalItem, Limits
from chalicelib.datasets.jsonl import write_jsonl
from chalicelib.datasets.refine import RefinementReport, refine
from chalicelib.datasets.source import load_dataset

__all__ = [
    "Dataset",
    "DatasetError",
    "Document",
    "EvalItem",
    "Limits",
    "RefinementReport",
    "load_dataset",
    "refine",
    "write_jsonl",
]
