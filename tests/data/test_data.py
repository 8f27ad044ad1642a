"""Tests of influence_stage.data.sources: sources, row ids, column roles, labels, featurizers, decisions."""

from __future__ import annotations

import os

# Before datasets / huggingface_hub are imported (when this module is the first to import them).
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from influence_stage.data.arrow import ADDED_ROW_ID, row_id_was_added  # noqa: E402
from influence_stage.decisions.apply import apply_decisions  # noqa: E402
from influence_stage.data.arrow import ROW_ID
from influence_stage.data.columns import ColumnRoles, resolve_columns
from influence_stage.data.featurize.config import FeaturizeConfig
from influence_stage.data.featurize.image import ImageFeaturizer
from influence_stage.data.labels import LabelEncoding, encode_labels
from influence_stage.data.featurize.tabular import TabularFeaturizer
from influence_stage.data.featurize.text import TextFeaturizer
from influence_stage.data.featurize import featurize
from influence_stage.data.sources import load_source, row_ids
from influence_stage.errors import InvalidInputError, InvalidTypeError  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Offline whatever imported datasets first: no test may touch the network."""
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _frame(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "x0": rng.normal(size=n).round(3),
        "x1": np.arange(n, dtype=np.float64) * 2.0,
        "label": [["cat", "dog", "bird"][i % 3] for i in range(n)],
    })


# --------------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------------

SOURCE_KINDS = ["parquet", "parquet_folder", "csv", "json", "save_to_disk", "save_to_disk_dict",
                "dataset", "dataset_dict", "dataframe", "arrays"]


def _make_source(kind: str, df: pd.DataFrame, tmp_path):
    """(source, split) for each source kind, all holding ``df``'s rows in order."""
    if kind == "parquet":
        path = tmp_path / "d.parquet"
        df.to_parquet(path)
        return path, None
    if kind == "parquet_folder":
        folder = tmp_path / "parts"
        folder.mkdir()
        df.iloc[:4].to_parquet(folder / "part-0.parquet")
        df.iloc[4:].to_parquet(folder / "part-1.parquet")
        return str(folder), None
    if kind == "csv":
        path = tmp_path / "d.csv"
        df.to_csv(path, index=False)
        return str(path), None
    if kind == "json":
        path = tmp_path / "d.jsonl"
        df.to_json(path, orient="records", lines=True)
        return str(path), None
    if kind == "save_to_disk":
        datasets.Dataset.from_pandas(df, preserve_index=False).save_to_disk(str(tmp_path / "saved"))
        return str(tmp_path / "saved"), None
    if kind == "save_to_disk_dict":
        full = datasets.Dataset.from_pandas(df, preserve_index=False)
        datasets.DatasetDict({"train": full, "test": full.select([0])}).save_to_disk(str(tmp_path / "saved_dd"))
        return str(tmp_path / "saved_dd"), "train"
    if kind == "dataset":
        return datasets.Dataset.from_pandas(df, preserve_index=False), None
    if kind == "dataset_dict":
        full = datasets.Dataset.from_pandas(df, preserve_index=False)
        return datasets.DatasetDict({"train": full.select([0, 1]), "test": full}), "test"
    if kind == "dataframe":
        return df, None
    if kind == "arrays":
        return (df[["x0", "x1"]].to_numpy(), df["label"].to_numpy()), None
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_load_source_round_trip(kind, tmp_path):
    df = _frame()
    source, split = _make_source(kind, df, tmp_path)
    ds = load_source(source, split=split, cache_dir=tmp_path / "cache")
    assert isinstance(ds, datasets.Dataset)
    assert ds.num_rows == len(df)
    assert ds.features[ROW_ID] == datasets.Value("int64", id=ADDED_ROW_ID) and row_id_was_added(ds)
    np.testing.assert_array_equal(row_ids(ds), np.arange(len(df)))
    assert ds["label"][:] == df["label"].tolist()
    np.testing.assert_allclose(np.asarray(ds["x0"][:], dtype=float), df["x0"].to_numpy())
    np.testing.assert_allclose(np.asarray(ds["x1"][:], dtype=float), df["x1"].to_numpy())
    roles = resolve_columns(ds, "label")
    assert roles == ColumnRoles("label", ("x0", "x1"), "tabular")


def test_load_source_image_arrays_channels_first(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(5, 3, 8, 6), dtype=np.uint8)  # (n, c, h, w)
    ds = load_source((X, np.array([0, 1, 0, 1, 1])))
    assert ds.column_names == ["image", "label", ROW_ID]
    assert isinstance(ds.features["image"], datasets.Array3D)
    assert ds.features["image"].shape == (8, 6, 3)  # stored channels-last
    roles = resolve_columns(ds, "label")
    assert roles.kind == "image"
    feats, fz = featurize(ds, roles)
    assert feats.shape == (5, 3, 8, 6) and feats.dtype == np.float32
    # Undo the per-channel normalisation: the [0, 1] pixels come back, channels-first.
    raw = feats * fz.scale_[None, :, None, None] + fz.mean_[None, :, None, None]
    np.testing.assert_allclose(raw, X / 255.0, atol=1e-5)


def test_load_source_hub_id_offline_is_quick_and_clear():
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match="could not reach the Hugging Face Hub.*local path"):
        load_source("someone/some-dataset")
    assert time.perf_counter() - start < 5.0


def test_load_source_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope" / "data.parquet"
    with pytest.raises(InvalidInputError, match=f"no file or folder at {missing}"):
        load_source(str(missing))
    with pytest.raises(InvalidInputError, match="no file or folder at .*nope.csv"):
        load_source("nope.csv")


def test_load_source_split_errors_list_splits():
    df = _frame()
    full = datasets.Dataset.from_pandas(df, preserve_index=False)
    dd = datasets.DatasetDict({"train": full, "validation": full.select([])})
    with pytest.raises(InvalidInputError, match=r"several splits \['train', 'validation'\]"):
        load_source(dd)
    with pytest.raises(InvalidInputError, match=r"no split 'test'; available splits: \['train', 'validation'\]"):
        load_source(dd, split="test")
    with pytest.raises(InvalidInputError, match="split 'validation'.*0 rows"):
        load_source(dd, split="validation")
    assert load_source(dd, split="train").num_rows == 6


def test_load_source_folder_with_split_files(tmp_path):
    df = _frame()
    df.to_parquet(tmp_path / "train.parquet")
    df.iloc[:2].to_parquet(tmp_path / "test.parquet")
    with pytest.raises(InvalidInputError, match="several splits"):
        load_source(str(tmp_path), cache_dir=tmp_path / "cache")
    assert load_source(str(tmp_path), split="test", cache_dir=tmp_path / "cache").num_rows == 2


def test_load_source_missing_label_column_lists_columns():
    with pytest.raises(InvalidInputError, match=r"label column 'target' not found; available columns: "
                                                r"\['x0', 'x1', 'label'\]"):
        load_source(_frame(), label_column="target")


def test_existing_row_id_kept_and_checked():
    df = _frame().assign(row_id=[10, 11, 12, 13, 14, 15])
    ds = load_source(df)
    np.testing.assert_array_equal(row_ids(ds), [10, 11, 12, 13, 14, 15])
    df.loc[4, "row_id"] = 12
    with pytest.raises(InvalidInputError, match=r"id 12 appears at rows \[2, 4\]"):
        load_source(df)


def test_row_id_survives_drop_and_select():
    ds = load_source(_frame())
    enc = encode_labels(ds, "label")
    table = pd.DataFrame({"row_id": np.arange(6), "action": ["keep", "drop", "keep", "drop", "keep", "keep"],
                          "suggested_label": 0, "weight": 1.0})
    out = apply_decisions(ds, table, label_column="label", encoding=enc)
    np.testing.assert_array_equal(row_ids(out), [0, 2, 4, 5])
    # A second pass on the cleaned data keeps the surviving ids.
    again = load_source(out)
    np.testing.assert_array_equal(row_ids(again), [0, 2, 4, 5])
    np.testing.assert_allclose(again["x1"][:], [0.0, 4.0, 8.0, 10.0])


# --------------------------------------------------------------------------------------------------
# column roles
# --------------------------------------------------------------------------------------------------


def test_resolve_columns_auto_choice_and_overrides():
    ds = load_source(datasets.Dataset.from_dict({
        "x": [1.0, 2.0, 3.0], "flag": [True, False, True], "tags": [["a"], ["b"], []],
        "text": ["a long sentence", "another long one", "x"], "code": ["A", "B", "C"], "label": [0, 1, 0],
    }))
    roles = resolve_columns(ds, "label")
    assert roles == ColumnRoles("label", ("text",), "text")  # longest strings win over "code"
    assert resolve_columns(ds, "label", ["x", "flag"]) == ColumnRoles("label", ("x", "flag"), "tabular")
    assert resolve_columns(ds.remove_columns(["text", "code"]), "label").feature_columns == ("x", "flag")
    with pytest.raises(InvalidInputError, match=r"feature column 'nope' not found; available columns: \["):
        resolve_columns(ds, "label", ["x", "nope"])
    with pytest.raises(InvalidTypeError, match=r"feature column 'tags' has dtype List\(Value\('string'\)\)"):
        resolve_columns(ds, "label", ["tags"])
    with pytest.raises(InvalidInputError, match="mix kinds"):
        resolve_columns(ds, "label", ["x", "text"])


def test_resolve_columns_prefers_image():
    imgs = [Image.new("L", (4, 4), color=i * 40) for i in range(4)]
    ds = load_source(datasets.Dataset.from_dict({"img": imgs, "x": [1, 2, 3, 4], "label": [0, 1, 0, 1]}))
    assert resolve_columns(ds, "label") == ColumnRoles("label", ("img",), "image")


def test_resolve_columns_label_errors():
    ds = load_source(_frame())
    with pytest.raises(InvalidInputError, match=r"label column 'y' not found; available columns: "
                                                r"\['x0', 'x1', 'label', 'row_id'\]"):
        resolve_columns(ds, "y")
    df = _frame()
    df.loc[3, "label"] = None
    with pytest.raises(InvalidInputError, match=r"1 missing label.*row 3 \(row_id 3\)"):
        resolve_columns(load_source(df), "label")
    cl = datasets.Dataset.from_dict({"x": [1.0, 2.0, 3.0], "label": [0, -1, 1]},
                                    features=datasets.Features({"x": datasets.Value("float64"),
                                                                "label": datasets.ClassLabel(names=["a", "b"])}))
    with pytest.raises(InvalidInputError, match=r"row 1 \(row_id 1\)"):
        resolve_columns(load_source(cl), "label")


# --------------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------------


def _classlabel_ds() -> datasets.Dataset:
    return load_source(datasets.Dataset.from_dict(
        {"x": [0.5, 1.5, 2.5, 3.5, 4.5], "note": ["a", "b", "c", "d", "e"], "label": [2, 0, 1, 2, 2]},
        features=datasets.Features({"x": datasets.Value("float32"), "note": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["zebra", "ant", "moose"])}),
    ))


def test_encode_labels_classlabel_keeps_names_and_codes():
    enc = encode_labels(_classlabel_ds(), "label")
    assert enc.names == ("zebra", "ant", "moose")  # not re-sorted
    np.testing.assert_array_equal(enc.codes, [2, 0, 1, 2, 2])
    assert enc.codes.dtype == np.int64
    np.testing.assert_array_equal(enc.decode([1, 2]), [1, 2])


def test_encode_labels_int_strings_and_decoding():
    ds = load_source((np.zeros((5, 2)), np.array([10, -1, 3, 10, 3], dtype=np.int32)))
    enc = encode_labels(ds, "label")
    assert enc.names == ("-1", "3", "10")  # numeric order, as strings
    np.testing.assert_array_equal(enc.codes, [2, 0, 1, 2, 1])
    decoded = enc.decode(np.array([0, 2]))
    assert decoded.dtype == np.int32 and decoded.tolist() == [-1, 10]

    ds = load_source(_frame())
    enc = encode_labels(ds, "label")
    assert enc.names == ("bird", "cat", "dog") and enc.n_classes == 3
    np.testing.assert_array_equal(enc.codes, [1, 2, 0, 1, 2, 0])
    assert enc.decode([2, 0]).tolist() == ["dog", "bird"]


def test_encode_labels_with_fitted_encoding():
    enc = encode_labels(load_source(_frame()), "label")
    new = load_source(pd.DataFrame({"x0": [0.0, 1.0, 2.0], "x1": [1.0, 1.0, 1.0], "label": ["dog", "cat", "dog"]}))
    np.testing.assert_array_equal(encode_labels(new, "label", fitted=enc).codes, [2, 1, 2])
    bad = load_source(pd.DataFrame({"x0": [0.0, 1.0, 2.0], "x1": [1.0, 1.0, 1.0], "label": ["dog", "cow", "emu"]}))
    with pytest.raises(InvalidInputError, match=r"unknown label 'cow' at row 1 \(row_id 1\) \(2 row\(s\) in all\)"):
        encode_labels(bad, "label", fitted=enc)


# --------------------------------------------------------------------------------------------------
# applying decisions
# --------------------------------------------------------------------------------------------------


def test_classlabel_end_to_end_relabel_drop_reweight():
    ds = _classlabel_ds()
    enc = encode_labels(ds, "label")
    table = pd.DataFrame({
        "row_id": [4, 3, 2, 1, 0],  # any order
        "action": ["reweight", "relabel", "keep", "drop", "relabel"],
        "suggested_label": [-1, 1, -1, -1, 0],
        "weight": [0.25, 1.0, 1.0, 1.0, 1.0],
    })
    out = apply_decisions(ds, table, label_column="label", encoding=enc)
    assert out.column_names == ["x", "note", "label", ROW_ID, "weight"]
    assert out.features["label"] == datasets.ClassLabel(names=["zebra", "ant", "moose"])
    np.testing.assert_array_equal(row_ids(out), [0, 2, 3, 4])
    assert out["label"][:] == [0, 1, 1, 2]  # rows 0 and 3 relabelled to zebra / ant
    assert [out.features["label"].int2str(v) for v in out["label"][:]] == ["zebra", "ant", "ant", "moose"]
    assert out["note"][:] == ["a", "c", "d", "e"]
    np.testing.assert_allclose(out["x"][:], [0.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(out["weight"][:], [1.0, 1.0, 1.0, 0.25])
    assert out.features["weight"] == datasets.Value("float64")
    # The input dataset is unchanged.
    assert ds["label"][:] == [2, 0, 1, 2, 2] and "weight" not in ds.column_names


def test_apply_decisions_string_labels_and_no_weight_column():
    ds = load_source(_frame())
    enc = encode_labels(ds, "label")
    table = pd.DataFrame({"row_id": np.arange(6), "action": ["keep"] * 5 + ["relabel"],
                          "suggested_label": [0, 0, 0, 0, 0, enc.names.index("cat")], "weight": 1.0})
    out = apply_decisions(ds, table, label_column="label", encoding=enc)
    assert out["label"][:] == ["cat", "dog", "bird", "cat", "dog", "cat"]
    assert out.features["label"] == ds.features["label"]
    assert "weight" not in out.column_names


def test_apply_decisions_id_errors():
    ds = load_source(_frame())
    enc = encode_labels(ds, "label")
    base = pd.DataFrame({"row_id": np.arange(6), "action": "keep", "suggested_label": 0, "weight": 1.0})
    with pytest.raises(InvalidInputError, match=r"missing 2 row_id\(s\) of the dataset: \[4, 5\]"):
        apply_decisions(ds, base.iloc[:4], label_column="label", encoding=enc)
    extra = pd.concat([base, base.iloc[:1].assign(row_id=99)])
    with pytest.raises(InvalidInputError, match=r"1 row_id\(s\) not in the dataset: \[99\]"):
        apply_decisions(ds, extra, label_column="label", encoding=enc)
    dup = pd.concat([base, base.iloc[:1]])
    with pytest.raises(InvalidInputError, match="lists row_id 0 more than once"):
        apply_decisions(ds, dup, label_column="label", encoding=enc)
    bad = base.assign(action=["keep", "relabel", "keep", "keep", "keep", "keep"], suggested_label=[0, 7, 0, 0, 0, 0])
    with pytest.raises(InvalidInputError, match=r"row_id 1 has suggested_label 7; expected a class code in 0..2"):
        apply_decisions(ds, bad, label_column="label", encoding=enc)


# --------------------------------------------------------------------------------------------------
# featurizers
# --------------------------------------------------------------------------------------------------


def test_featurize_tabular_standardizes_with_fitted_stats():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    ds = load_source(pd.DataFrame({"a": x, "const": 7.0, "flag": [True, False, True, True, False, True],
                                   "label": [0, 1, 0, 1, 0, 1]}))
    roles = resolve_columns(ds, "label")
    assert roles.feature_columns == ("a", "const", "flag")
    feats, fz = featurize(ds, roles, batch_size=4)  # two batches
    assert isinstance(fz, TabularFeaturizer)
    assert feats.shape == (6, 3) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[:, 0], (x - x.mean()) / x.std(), rtol=1e-6)
    np.testing.assert_allclose(feats[:, 0].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(feats[:, 0].std(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(feats[:, 1], 0.0)  # zero std: centred only
    flag = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    np.testing.assert_allclose(feats[:, 2], (flag - flag.mean()) / flag.std(), rtol=1e-6)
    # Batch size does not change the answer.
    np.testing.assert_array_equal(featurize(ds, roles, batch_size=1000)[0], feats)
    # New data uses the fitted mean and std, not its own.
    new = load_source(pd.DataFrame({"a": [x.mean(), x.mean() + x.std()], "const": [7.0, 8.0], "flag": [True, False],
                                    "label": [0, 1]}))
    again, same = featurize(new, roles, fitted=fz)
    assert same is fz
    np.testing.assert_allclose(again, [[0.0, 0.0, (1 - flag.mean()) / flag.std()],
                                       [1.0, 1.0, -flag.mean() / flag.std()]], rtol=1e-5, atol=1e-6)


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_featurize_images_mixed_sizes_and_modes():
    rng = np.random.default_rng(0)
    grey = np.full((10, 6), 153, dtype=np.uint8)  # 0.6 everywhere
    imgs = [
        Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8), mode="RGB"),
        Image.fromarray(grey, mode="L"),
        Image.new("RGB", (12, 12), color=(255, 0, 0)),
        Image.new("RGBA", (5, 7), color=(0, 0, 255, 128)),
    ]
    ds = load_source(pd.DataFrame({"img": imgs, "label": ["a", "b", "a", "b"]}))
    assert isinstance(ds.features["img"], datasets.Image)
    roles = resolve_columns(ds, "label")
    feats, fz = featurize(ds, roles, batch_size=3)
    assert isinstance(fz, ImageFeaturizer)
    assert feats.shape == (4, 3, 32, 32) and feats.dtype == np.float32  # mixed sizes → 32×32, colour → RGB
    per_channel = feats.transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(per_channel.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(axis=1), 1.0, rtol=1e-4)
    raw = feats * fz.scale_[None, :, None, None] + fz.mean_[None, :, None, None]
    np.testing.assert_allclose(raw[2, :, 5, 5], [1.0, 0.0, 0.0], atol=1e-5)  # pure red stays pure red
    np.testing.assert_allclose(raw[3, :, 5, 5], [0.0, 0.0, 1.0], atol=1e-5)  # alpha dropped
    np.testing.assert_allclose(raw[1], 0.6, atol=1e-5)  # grey repeated to 3 channels, resized
    # A fitted featurizer gives the same array on the same data.
    np.testing.assert_allclose(featurize(ds, roles, fitted=fz)[0], feats, atol=1e-6)
    # A forced size.
    small, _ = featurize(ds, roles, config=FeaturizeConfig(image_size=(4, 6)))
    assert small.shape == (4, 3, 4, 6)


def test_featurize_images_equal_sizes_keep_their_size():
    imgs = [Image.new("L", (5, 3), color=c) for c in (0, 51, 102, 255)]
    ds = load_source(datasets.Dataset.from_dict({"img": imgs, "label": [0, 1, 0, 1]}))
    feats, fz = featurize(ds, resolve_columns(ds, "label"))
    assert feats.shape == (4, 1, 3, 5)
    raw = feats * fz.scale_[0] + fz.mean_[0]
    np.testing.assert_allclose(raw[:, 0, 0, 0], [0.0, 0.2, 0.4, 1.0], atol=1e-6)
    np.testing.assert_allclose(fz.mean_[0], 0.4, atol=1e-6)


def test_featurize_image_errors_name_the_row():
    good = {"bytes": _png_bytes(Image.new("RGB", (4, 4))), "path": None}
    ds = load_source(datasets.Dataset.from_dict(
        {"img": [good, good, {"bytes": b"not an image", "path": None}], "label": [0, 1, 0]},
        features=datasets.Features({"img": datasets.Image(), "label": datasets.Value("int64")})))
    with pytest.raises(InvalidInputError, match=r"image column 'img'.*row 2 \(row_id 2\)"):
        featurize(ds, resolve_columns(ds, "label"))
    arrays = [np.zeros((4, 4, 3)), np.ones((6, 5, 3)), np.ones((5, 6, 7))]  # last: 7 channels
    ds = load_source(datasets.Dataset.from_dict({"arr": arrays, "label": [0, 1, 0]}))
    assert resolve_columns(ds, "label").kind == "image"
    with pytest.raises(InvalidInputError, match=r"image column 'arr'.*row 2 \(row_id 2\).*shape \(5, 6, 7\)"):
        featurize(ds, resolve_columns(ds, "label"))
    ragged = datasets.Dataset.from_dict({"arr": [[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0]]], "label": [0, 1]})
    with pytest.raises(InvalidInputError, match=r"row 1 \(row_id 1\).*ragged"):
        featurize(load_source(ragged), ColumnRoles("label", ("arr",), "image"))


SENTENCES = [
    "the film was a delight from start to finish", "a dull dull dull and tedious movie", "wonderful acting and a great story",
    "i fell asleep halfway through", "the plot was clever and the cast superb", "boring, predictable and too long",
    "an instant classic that i will watch again", "the worst film of the year", "charming, funny and warm",
    "a mess of a script with flat characters", "beautiful photography and a moving score", "nothing works here",
]


def test_featurize_text_tfidf_svd():
    ds = load_source(pd.DataFrame({"text": SENTENCES, "label": [1, 0] * 6}))
    roles = resolve_columns(ds, "label")
    assert roles == ColumnRoles("label", ("text",), "text")
    feats, fz = featurize(ds, roles, batch_size=5)
    assert isinstance(fz, TextFeaturizer)
    assert feats.shape == (12, 11) and feats.dtype == np.float32  # d = rows - 1 < 128
    # Reference: the documented pipeline written out.
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(max_features=2048, sublinear_tf=True, dtype=np.float32).fit_transform(SENTENCES)
    z = TruncatedSVD(n_components=11, random_state=0).fit_transform(tfidf)
    np.testing.assert_allclose(feats, (z - z.mean(axis=0)) / z.std(axis=0), atol=1e-4)
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(feats.std(axis=0), 1.0, rtol=1e-4)
    again, _ = featurize(ds, roles, batch_size=100)
    np.testing.assert_allclose(again, feats, atol=1e-5)  # deterministic, batch-size free
    refit, _ = featurize(ds, roles, fitted=fz)
    np.testing.assert_allclose(refit, feats, atol=1e-4)
    narrow, _ = featurize(ds, roles, config=FeaturizeConfig(text_components=4))
    assert narrow.shape == (12, 4)


def test_featurize_text_model_without_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    ds = load_source(pd.DataFrame({"text": SENTENCES[:4], "label": [1, 0, 1, 0]}))
    with pytest.raises(InvalidInputError, match="needs the optional package sentence-transformers"):
        featurize(ds, resolve_columns(ds, "label"), config=FeaturizeConfig(text_model=str(tmp_path)))


def test_featurize_rejects_mismatched_fitted():
    ds = load_source(_frame())
    _, fz = featurize(ds, resolve_columns(ds, "label"))
    with pytest.raises(InvalidInputError, match="the fitted featurizer is tabular on"):
        featurize(ds, ColumnRoles("label", ("x0",), "tabular"), fitted=fz)


def test_label_encoding_is_a_frozen_dataclass():
    enc = encode_labels(load_source(_frame()), "label")
    assert isinstance(enc, LabelEncoding)
    with pytest.raises(AttributeError):
        enc.names = ("x",)  # type: ignore[misc]


def test_selected_and_shuffled_datasets_read_in_their_own_order():
    df = _frame(40)
    ds = load_source(df)
    sub = ds.shuffle(seed=3).select(range(0, 40, 3))  # an indices mapping, rows out of source order
    ids = row_ids(sub)
    assert sorted(ids.tolist()) != ids.tolist()
    roles = resolve_columns(sub, "label")
    feats, _ = featurize(sub, roles, batch_size=4)
    flat, _ = featurize(sub.flatten_indices(), roles, batch_size=4)
    np.testing.assert_array_equal(feats, flat)
    x0 = df["x0"].to_numpy()[ids]
    np.testing.assert_allclose(feats[:, 0], (x0 - x0.mean()) / x0.std(), rtol=1e-5)
    enc = encode_labels(sub, "label")
    assert [enc.names[c] for c in enc.codes] == df["label"].to_numpy()[ids].tolist()
    table = pd.DataFrame({"row_id": ids, "action": ["drop"] + ["reweight"] * (len(ids) - 1),
                          "suggested_label": 0, "weight": 2.0})
    out = apply_decisions(sub, table, label_column="label", encoding=enc)
    np.testing.assert_array_equal(row_ids(out), ids[1:])
    np.testing.assert_allclose(out["x0"][:], x0[1:])


def test_load_source_bad_inputs(tmp_path):
    with pytest.raises(InvalidTypeError, match="source of type int is not supported"):
        load_source(42)
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(InvalidInputError, match=r"unsupported suffix '.txt'"):
        load_source(str(tmp_path / "data.txt"))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _frame().to_parquet(mixed / "a.parquet")
    _frame().to_csv(mixed / "b.csv", index=False)
    with pytest.raises(InvalidInputError, match=r"mixes file formats \['.csv', '.parquet'\]"):
        load_source(str(mixed), cache_dir=tmp_path / "cache")
    with pytest.raises(InvalidInputError, match=r"X and y have different lengths: X has 3 rows, y has 2"):
        load_source((np.zeros((3, 2)), np.array([0, 1])))


def test_image_featurizer_fitted_on_grey_converts_colour():
    grey = load_source(datasets.Dataset.from_dict(
        {"img": [Image.new("L", (4, 4), color=c) for c in (0, 100, 200)], "label": [0, 1, 0]}))
    roles = resolve_columns(grey, "label")
    _, fz = featurize(grey, roles)
    colour = load_source(datasets.Dataset.from_dict(
        {"img": [Image.new("RGB", (8, 8), color=(255, 255, 255)), Image.new("RGB", (4, 4), color=(0, 0, 255))],
         "label": [1, 0]}))
    feats, _ = featurize(colour, roles, fitted=fz)
    assert feats.shape == (2, 1, 4, 4)  # fitted size and channel count
    raw = feats * fz.scale_[0] + fz.mean_[0]
    np.testing.assert_allclose(raw[:, 0, 1, 1], [1.0, 0.114], atol=1e-5)  # luminance


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_take_rows_equals_an_arrow_take_on_a_table_of_many_chunks(order):
    """Rows taken one record batch at a time equal ``Table.take``, nested list columns included."""
    import pyarrow as pa

    from influence_stage.data.arrow import take_rows

    rng = np.random.default_rng(0)
    batches = [pa.record_batch({"x": np.arange(s, s + 7, dtype=np.float32),
                                "px": pa.array([[[i, i + 1]] * 2 for i in range(s, s + 7)]),
                                "row_id": np.arange(s, s + 7)}) for s in range(0, 70, 7)]
    table = pa.Table.from_batches(batches)
    rows = rng.choice(70, size=40, replace=False)
    rows = np.sort(rows) if order == "sorted" else rows
    got = take_rows(table, rows)
    assert got.equals(table.take(pa.array(rows)))
    assert got.column("row_id").to_pylist() == rows.tolist()
    assert take_rows(table, np.array([], dtype=np.int64)).num_rows == 0
