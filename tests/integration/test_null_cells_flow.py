"""``influence-stage clean`` on a parquet source with NaN feature cells: the flow runs end to end and publishes
every row, the cells as they were, with the null issue type in the manifest."""

from __future__ import annotations

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("prefect")
pytestmark = pytest.mark.usefixtures("prefect_api")  # the test process's one Prefect server (tests/conftest.py)

from influence_stage.cli import main  # noqa: E402
from influence_stage.publish.read import load_published  # noqa: E402

NAN_CELLS = {4: ["a"], 17: ["c"], 33: ["a", "b"]}


def test_cli_clean_publishes_a_source_with_nan_cells(tmp_path, capsys):
    rng = np.random.default_rng(0)
    k = np.arange(120) % 3
    frame = pd.DataFrame(rng.normal(size=(120, 4)) + 3 * np.eye(3, 4)[k], columns=["a", "b", "c", "d"])
    frame["label"] = k
    for row, cols in NAN_CELLS.items():
        frame.loc[row, cols] = np.nan
    source = tmp_path / "nan.parquet"
    frame.to_parquet(source, index=False)
    code = main(["clean", "--source", str(source), "--name", "nan", "--publish-root", str(tmp_path / "pub"),
                 "--cache-dir", str(tmp_path / "cache"), "--model", "mlp", "--ft-lr", "0.1", "--seed", "0",
                 "--issue-types", "null", "exact_duplicate"])
    out = capsys.readouterr()
    assert code == 0, out.err
    ds, manifest, meta = load_published(tmp_path / "pub" / "nan", verify=True)
    assert meta["rows_in"] == 120 and "is_null_issue" in manifest
    kept = manifest.loc[manifest["action"] != "drop", "row_id"].to_numpy()  # the stage's ids: input positions
    data = ds.to_pandas()
    assert len(data) == len(kept) and data["a"].isna().sum() >= 1  # published with the user's cells as they were
    np.testing.assert_array_equal(data[["a", "b", "c", "d"]].isna().to_numpy(),
                                  frame.iloc[kept][["a", "b", "c", "d"]].isna().to_numpy())
