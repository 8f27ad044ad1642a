"""Content fingerprints of a dataset (its Arrow table, column names and feature types): cache keys and skip-unchanged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import datasets
import pyarrow as pa

from influence_stage.errors import InvalidTypeError

#: Rows per window when hashing a dataset; fixed so that the fingerprint does not depend on chunking.
FINGERPRINT_BATCH_ROWS = 8192


def _canonical_ipc(array: pa.Array, name: str) -> bytes:
    """Bytes of one column window that depend only on its logical content.

    ``concat_arrays`` copies into fresh zero-offset buffers (a slice keeps its parent's buffers,
    offsets and trailing bitmap bits); the IPC stream then writes them with zeroed padding.
    """
    fresh = pa.concat_arrays([array])
    batch = pa.record_batch([fresh], names=[name])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def column_fingerprints(ds: datasets.Dataset, *, batch_rows: int = FINGERPRINT_BATCH_ROWS) -> dict[str, str]:
    """``sha256`` hex of each column's content, in dataset order (indices mapping applied).

    Rows are read in windows of ``batch_rows`` (fixed, so chunking does not matter); each window of
    each column is hashed in a canonical Arrow IPC form. Values stored under nulls are part of the
    content as Arrow keeps them (they are zero for data built by Arrow, pandas or ``datasets``).

    Parameters
    ----------
    ds : datasets.Dataset
        ``n`` rows.
    batch_rows : int
        Rows per window; changing it changes the digests.

    Returns
    -------
    dict
        Column name → 64 hex digits.
    """
    if not isinstance(ds, datasets.Dataset):
        raise InvalidTypeError(f"ds must be a datasets.Dataset; found {type(ds).__name__}.")
    hashers = {name: hashlib.sha256() for name in ds.column_names}
    for table in ds.with_format("arrow").iter(batch_size=batch_rows):
        for name in ds.column_names:
            col = table.column(name)
            if col.num_chunks:
                hashers[name].update(_canonical_ipc(pa.concat_arrays(col.chunks), name))
    return {name: h.hexdigest() for name, h in hashers.items()}


def combine_fingerprints(ds: datasets.Dataset, columns: Mapping[str, str]) -> str:
    """The dataset fingerprint from per-column digests (see ``dataset_fingerprint``)."""
    meta = {
        "num_rows": ds.num_rows,
        "columns": list(ds.column_names),
        "features": ds.features.to_dict(),
        "digests": [columns[c] for c in ds.column_names],
    }
    text = json.dumps(meta, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dataset_fingerprint(ds: datasets.Dataset) -> str:
    """Stable hash of a dataset's content, column names and feature types, ``sha256`` hex.

    Equal for two datasets with the same rows in the same order, the same column names and the
    same features (a ``ClassLabel``'s names included), however they were built or stored; any
    changed value, column, feature type or row order changes it. ``datasets``' own
    ``_fingerprint`` is not used: it hashes the transform history and file paths, not the content
    (the same parquet file saved twice, or ``select(range(n))``, gets a new one).

    Parameters
    ----------
    ds : datasets.Dataset

    Returns
    -------
    str
        64 hex digits.
    """
    return combine_fingerprints(ds, column_fingerprints(ds))
