"""An empty suggestion (a flagged row with no confident other label) stays empty through publishing and reading."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest

from influence_stage.data.labels import encode_labels
from influence_stage.decisions import decide
from influence_stage.decisions.apply import apply_decisions
from influence_stage.publish.card import dataset_card
from influence_stage.publish.manifest import labelled_manifest, manifest_codes
from influence_stage.publish.versions import load_published, publish
from influence_stage.quality import validate_output


@pytest.mark.parametrize("values", [[0, 5, 7], ["cat", "dog", "eel"], [False, True]])
def test_publish_and_read_keep_empty_suggestions(tmp_path, values):
    k = len(values)
    n = 12
    ds = datasets.Dataset.from_dict({"x": np.arange(n, dtype=np.float64), "label": [values[i % k] for i in range(n)],
                                     "row_id": np.arange(n, dtype=np.int64)})
    enc = encode_labels(ds, "label")
    y = enc.codes
    proba = np.full((n, k), 0.2 / (k - 1))
    proba[np.arange(n), y] = 0.8
    proba[0] = np.roll(proba[0], 1)          # row 0: another label at 0.8 -> relabeled
    proba[1] = 0.4 / (k - 1)                 # row 1: the given label leads, no other reaches 0.5 -> empty, dropped
    proba[1, y[1]] = 0.6
    scores = np.r_[5.0, 4.0, np.linspace(0.1, 0.5, n - 2)]
    table = decide(scores, y, threshold=1.0, action="relabel", proba=proba, max_fraction_per_class=None).table
    assert table["suggested_label"].isna().tolist() == [False, True] + [False] * (n - 2)
    out = apply_decisions(ds, table, label_column="label", encoding=enc)
    manifest = labelled_manifest(table, enc)
    assert pd.isna(manifest["suggested_label"].iloc[1])
    assert manifest["suggested_label"].iloc[0] == values[(y[0] + 1) % k]
    # the output gate takes the empty suggestion (its in-set check ignores nulls; relabel rows have one)
    report = validate_output(out, ds, manifest, label_column="label", class_names=list(enc.values),
                             max_drop_fraction=0.5)
    assert report.success, report.failures()

    pub = publish(out, manifest, root=tmp_path, name="toy", classes=list(enc.values),
                  class_names=[str(v) for v in enc.names])
    _, back, meta = load_published(pub.path)
    assert back["suggested_label"].isna().tolist() == [False, True] + [False] * (n - 2)
    codes = manifest_codes(back, meta)
    assert codes["suggested_label"].dtype == "Int64"
    pd.testing.assert_series_equal(codes["suggested_label"], table["suggested_label"], check_names=False)
    card = dataset_card(meta, out.features, back)
    assert "Most frequent relabels" in card and "| nan |" not in card and "<NA>" not in card
