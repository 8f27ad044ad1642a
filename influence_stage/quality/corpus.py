"""The ``corpus`` Great Expectations suite: the gate before a curated corpus is published.

Built in code like the ``input`` / ``output`` suites (``influence_stage.quality.suites``),
stored as a JSON snapshot in ``influence_stage/quality/suites/corpus.json`` (a test checks the
file equals what the code builds; ``write_corpus_suite_file`` regenerates it and refuses to
change the expectations without a bump of ``CORPUS_SUITE_VERSION``), run on small pandas
frames (*batches*), one GE suite per batch, with run-time values bound as GE suite parameters.

Batches
-------
``documents``  one row per curated document (``row_id``, ``n_chars`` of the stripped text,
               ``content_hash``): every document has text (no empty documents), lengths within
               ``[min_chars, max_chars]``, row ids unique, and, when deduplication was asked for,
               no two documents with the same content hash (no exact duplicates left).
``manifest``   the manifest's columns, row ids not null and unique, statuses known.
``accounting`` the outer join of input rows ``0..n_input-1``, manifest and output row ids: every
               input document is in the manifest exactly once, every manifest and output row is an
               input row, and the output holds exactly the documents the manifest keeps.
``budget``     one row: the kept fraction of the scored documents equals the budget (within the
               rounding of a fraction to a count, ``1 / (2 n_scored)``).

Only derived columns are validated (lengths and hashes, never the texts), so the gate's memory is
a few numbers per document.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd

from influence_stage.data.corpus import STATUSES, content_hash
from influence_stage.memory import release_free_memory
from influence_stage.data.arrow import ROW_ID
from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.quality.gate import Batch, ValidationReport, validate_batches
from influence_stage.quality.suites import gx_modules, manifest_expectations, param, suite_json

SUITE = "corpus"
CORPUS_SUITE_VERSION = 1
"""Version of the corpus suite; bump it whenever its expectations change."""

#: Statuses a curation manifest row may have: the inventory's (minus "ok") plus the budget's outcome.
MANIFEST_STATUSES: tuple[str, ...] = ("kept", "redundant", "junk") + tuple(s for s in STATUSES if s != "ok")
#: Columns of a curation manifest, in order.
MANIFEST_COLUMNS: tuple[str, ...] = (ROW_ID, "doc_id", "status", "action", "score", "base_loss", "n_chars",
                                     "content_hash", "duplicate_of")
#: Run-time parameters of the suite.
PARAMETERS: dict[str, str] = {
    "min_chars": "the fewest characters a kept document may have (after stripping whitespace)",
    "max_chars": "the most characters a kept document may have",
    "budget_min": "the budget as a fraction of the scored documents, minus the rounding tolerance",
    "budget_max": "the budget as a fraction of the scored documents, plus the rounding tolerance",
}
_FROM_INPUT = "input"
_NOT_FROM_INPUT = "not an input row_id"
#: ``max_chars`` bound used when none is set.
NO_MAX = 2 ** 53


def build_corpus_suites(*, dedup: bool = True) -> dict[str, Any]:
    """The ``corpus`` suite: one GE ``ExpectationSuite`` per batch (module docstring).

    Parameters
    ----------
    dedup : bool
        Include the "no exact duplicates left" expectation (only when deduplication was asked for).
    """
    gx, gxe = gx_modules()
    documents = [
        gxe.ExpectColumnValuesToNotBeNull(column="n_chars", description="every curated document has text",
                                          meta={"key": "text_not_null"}),
        gxe.ExpectColumnValuesToBeBetween(column="n_chars", min_value=1, description="no empty documents",
                                          meta={"key": "no_empty_documents"}),
        gxe.ExpectColumnValuesToBeBetween(column="n_chars", min_value=param("min_chars"),
                                          max_value=param("max_chars"),
                                          description="document lengths are within [min_chars, max_chars]",
                                          meta={"key": "length_bounds"}),
        gxe.ExpectColumnValuesToBeUnique(column=ROW_ID, description="curated row_id values are unique",
                                         meta={"key": "row_id_unique"}),
    ]
    if dedup:
        documents.append(gxe.ExpectColumnValuesToBeUnique(column="content_hash",
                                                          description="no exact duplicates left",
                                                          meta={"key": "no_exact_duplicates"}))
    manifest = manifest_expectations(gxe, MANIFEST_COLUMNS) + [
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(MANIFEST_STATUSES),
                                        description=f"manifest statuses are one of {list(MANIFEST_STATUSES)}",
                                        meta={"key": "manifest_status_valid"}),
    ]
    accounting = [
        gxe.ExpectColumnValuesToBeInSet(column="manifest_count", value_set=[1],
                                        description="every input document is in the manifest exactly once",
                                        meta={"key": "manifest_covers_input"}),
        gxe.ExpectColumnValuesToBeInSet(column="manifest_row_source", value_set=[_FROM_INPUT],
                                        description="every manifest row_id is an input row",
                                        meta={"key": "manifest_rows_from_input"}),
        gxe.ExpectColumnValuesToBeInSet(column="output_row_source", value_set=[_FROM_INPUT],
                                        description="every curated row_id is an input row",
                                        meta={"key": "output_rows_from_input"}),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="output_count", column_B="expected_output_count",
                                            ignore_row_if="either_value_is_missing",
                                            description="the output holds exactly the documents the manifest keeps",
                                            meta={"key": "output_matches_manifest"}),
    ]
    budget = [
        gxe.ExpectColumnValuesToBeBetween(column="kept_fraction", min_value=param("budget_min"),
                                          max_value=param("budget_max"),
                                          description="the kept fraction of the scored documents equals the budget",
                                          meta={"key": "kept_fraction_equals_budget"}),
    ]
    meta = {"suite": SUITE, "suite_version": CORPUS_SUITE_VERSION}
    return {name: gx.ExpectationSuite(name=f"{SUITE}.{name}", expectations=exps, meta={**meta, "batch": name})
            for name, exps in (("documents", documents), ("manifest", manifest), ("accounting", accounting),
                               ("budget", budget))}


def suite_document() -> dict[str, Any]:
    """What ``suites/corpus.json`` holds: the suite with deduplication on (its largest form)."""
    return {
        "name": SUITE,
        "version": CORPUS_SUITE_VERSION,
        "description": "Gate before a curated corpus is published: no empty documents, lengths within bounds, "
                       "no exact duplicates left (when deduplicating), every input document in the manifest "
                       "exactly once, the output equals the manifest's kept documents, the kept fraction equals "
                       "the budget.",
        "conditional": {"no_exact_duplicates": "only when deduplication was asked for"},
        "parameters": dict(PARAMETERS),
        "batches": {batch: suite_json(s) for batch, s in build_corpus_suites(dedup=True).items()},
    }


def stored_suite() -> dict[str, Any]:
    """The stored JSON of the corpus suite, read from the installed package."""
    path = resources.files("influence_stage.quality").joinpath("suites", f"{SUITE}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def write_corpus_suite_file(directory: str | Path | None = None) -> Path:
    """Regenerate ``suites/corpus.json`` from the code; refuses a changed suite without a new version."""
    folder = Path(directory) if directory is not None else Path(__file__).with_name("suites")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{SUITE}.json"
    doc = suite_document()
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("version") == doc["version"] and old != doc:
            raise InvalidInputError(f"suite {SUITE!r} changed but its version is still {doc['version']}. Fix: bump "
                                    "CORPUS_SUITE_VERSION in influence_stage/quality/corpus.py.")
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def document_frame(ds: datasets.Dataset, text_column: str, *, batch_size: int = 4096) -> pd.DataFrame:
    """``row_id``, ``n_chars`` (stripped; NaN for a missing or non-string text) and ``content_hash``
    (a string column, missing where the text is) of each curated document, read in batches (the texts
    are not kept; the hashes are gathered into one Arrow string column, not one Python object per document)."""
    import pyarrow as pa

    if not isinstance(ds, datasets.Dataset):
        raise InvalidTypeError(f"the curated corpus must be a datasets.Dataset; found {type(ds).__name__}.")
    for col in (ROW_ID, text_column):
        if col not in ds.column_names:
            raise InvalidInputError(f"the curated corpus has no column {col!r}; its columns are {ds.column_names}.")
    n = ds.num_rows
    ids = np.empty(n, dtype=np.int64)
    n_chars = np.empty(n, dtype=np.float64)
    chunks: list[Any] = []
    view = ds.select_columns([ROW_ID, text_column])
    for start in range(0, n, batch_size):
        batch = view[start:start + batch_size]
        stop = start + len(batch[ROW_ID])
        ids[start:stop] = batch[ROW_ID]
        hashes: list[Any] = []
        for i, text in enumerate(batch[text_column], start):
            ok = isinstance(text, str)
            n_chars[i] = float(len(text.strip())) if ok else np.nan
            hashes.append(content_hash(text) if ok else None)
        chunks.append(pa.array(hashes, type=pa.string()))
    hash_column = pa.chunked_array(chunks, type=pa.string())  # kept in its chunks: no second copy to join them
    del chunks, view
    frame = pd.DataFrame({ROW_ID: ids, "n_chars": n_chars,
                          "content_hash": pd.Series(hash_column.to_pandas(types_mapper=_string_dtype), dtype="str")})
    release_free_memory()  # the batches' Python lists and the hash chunks
    return frame


def _string_dtype(arrow_type: Any) -> Any:
    """pandas' Arrow-backed ``str`` dtype for Arrow strings (no Python object per value)."""
    import pyarrow as pa

    return pd.StringDtype("pyarrow", na_value=np.nan) if arrow_type == pa.string() else None


def _accounting(n_input: int, manifest: pd.DataFrame, documents: pd.DataFrame) -> pd.DataFrame:
    rows = np.arange(int(n_input), dtype=np.int64)
    man_ids = manifest[ROW_ID].to_numpy()
    man_counts = pd.Series(man_ids).value_counts()
    out_counts = documents[ROW_ID].value_counts()
    all_ids = np.union1d(np.union1d(rows, man_ids.astype(np.int64)), documents[ROW_ID].to_numpy(dtype=np.int64))
    in_input = (all_ids >= 0) & (all_ids < n_input)
    n_man = man_counts.reindex(all_ids).fillna(0).to_numpy(dtype=np.int64)
    n_out = out_counts.reindex(all_ids).fillna(0).to_numpy(dtype=np.int64)
    kept = pd.Series(manifest["status"].eq("kept").to_numpy(), index=man_ids)
    kept = kept[~kept.index.duplicated()].reindex(all_ids).fillna(False).to_numpy(dtype=bool)

    def masked(values: np.ndarray, mask: np.ndarray) -> pd.Series:
        return pd.Series(pd.array(values, dtype="Int64")).mask(~mask)

    def source(mask: np.ndarray) -> pd.Series:
        # one shared string object per label, 8 bytes a row (not a Python string per row)
        out = np.full(len(all_ids), None, dtype=object)
        out[mask & in_input] = _FROM_INPUT
        out[mask & ~in_input] = _NOT_FROM_INPUT
        return pd.Series(out, dtype=object)

    in_both = in_input & (n_man > 0)
    return pd.DataFrame({
        ROW_ID: all_ids,
        "manifest_count": masked(n_man, in_input),
        "manifest_row_source": source(n_man > 0),
        "output_row_source": source(n_out > 0),
        "output_count": masked(n_out, in_both),
        "expected_output_count": masked(kept.astype(np.int64), in_both),
    })


def validate_corpus(documents: pd.DataFrame, manifest: pd.DataFrame, *, n_input: int, n_scored: int,
                    budget_fraction: float, min_chars: int = 1, max_chars: int | None = None,
                    dedup: bool = True) -> ValidationReport:
    """Run the ``corpus`` suite on a curated corpus (its ``document_frame``) and its manifest.

    Parameters
    ----------
    documents : pandas.DataFrame
        ``row_id``, ``n_chars``, ``content_hash`` per curated document (``document_frame``).
    manifest : pandas.DataFrame
        One row per input document (``MANIFEST_COLUMNS``).
    n_input : int
        Documents in the input corpus (counted from the shards, not from the manifest).
    n_scored : int
        Documents the budget chose from (those the inventory passed).
    budget_fraction : float
        The budget as a fraction of ``n_scored`` (a count ``k`` is ``k / n_scored``).
    min_chars, max_chars : int
        Length bounds of kept documents.
    dedup : bool
        Whether exact duplicates were removed (adds the "no exact duplicates left" check).

    Returns
    -------
    ValidationReport
        ``suite="corpus"``; call ``raise_if_failed()`` to gate.
    """
    if not isinstance(manifest, pd.DataFrame) or not isinstance(documents, pd.DataFrame):
        raise InvalidTypeError("documents and manifest must be pandas DataFrames.")
    for col in (ROW_ID, "status"):
        if col not in manifest.columns:
            raise InvalidInputError(f"the manifest has no {col!r} column; its columns are {list(manifest.columns)}.")
    n_scored = max(int(n_scored), 1)
    tol = 0.5 / n_scored + 1e-12
    parameters = {"min_chars": int(min_chars), "max_chars": int(max_chars) if max_chars is not None else NO_MAX,
                  "budget_min": float(budget_fraction) - tol, "budget_max": float(budget_fraction) + tol}
    budget = pd.DataFrame({"check": ["budget"], "kept_fraction": [len(documents) / n_scored],
                           "n_kept": [len(documents)], "n_scored": [n_scored]})
    # One batch at a time, each frame built just before it is validated: the accounting join (one row per
    # input document) is not held while Great Expectations works on the documents and the manifest.
    batches = (
        lambda: Batch("documents", documents.reset_index(drop=True), (ROW_ID,)),
        lambda: Batch("manifest", manifest.reset_index(drop=True), (ROW_ID,)),
        lambda: Batch("accounting", _accounting(n_input, manifest, documents), (ROW_ID,)),
        lambda: Batch("budget", budget, ("check",)),
    )
    suites = build_corpus_suites(dedup=dedup)
    results: list[dict[str, Any]] = []
    ge_results: dict[str, Any] = {}
    for make in batches:
        batch_results, batch_ge = validate_batches(SUITE, suites, [make()], parameters)
        results.extend(batch_results)
        ge_results.update(batch_ge)
        release_free_memory()  # Great Expectations' work on this batch (its row hashes, masks)
    return ValidationReport(suite=SUITE, success=all(r["success"] for r in results), results=tuple(results),
                            suite_version=CORPUS_SUITE_VERSION,
                            parameters={**parameters, "n_input": int(n_input), "n_scored": n_scored,
                                        "budget_fraction": float(budget_fraction), "dedup": bool(dedup)},
                            ge_results=ge_results)
