"""Image features on disk (data.feature_store): same values, same batches, same scores as in memory.

Exactly equal, not within a tolerance: the store normalises each batch with the in-memory
featurizer's float32 operations in the same order, the learner draws the same index batches and
evaluates the same batch shapes, so every torch operation sees the same inputs in both runs.
"""

from __future__ import annotations

import gc
import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.data.feature_store import FeatureStore, StreamData  # noqa: E402
from influence_stage.data.featurize.config import FeaturizeConfig  # noqa: E402
from influence_stage.engine.learner import batch_indices  # noqa: E402
from influence_stage.engine.losses import loss_matrix  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.stage.run import run_pipeline, score_step  # noqa: E402
from influence_stage.stage.steps import CleanConfig, featurize_step, learner_data, make_model_step, prepare  # noqa: E402

N, K = 300, 3
GEX = GEXConfig(chains=2, cycles=2, ft_lr=0.2, eval_batch_size=64)
FIT = FitConfig(epochs=3)


def images(n: int = N, *, seed: int = 0, dtype: type = np.uint8) -> datasets.Dataset:
    """``n`` 8×8 RGB images (class-dependent brightness per channel plus noise), labels 0..K-1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    base = np.zeros((n, 8, 8, 3))
    base[np.arange(n), :, :, y] = 120.0
    pixels = np.clip(base + rng.normal(60, 40, size=base.shape), 0, 255)
    if dtype == np.uint8:
        pixels = pixels.astype(np.uint8)
    else:
        pixels = (pixels / 255.0).astype(dtype)
    feature = datasets.Array3D(shape=(8, 8, 3), dtype=np.dtype(dtype).name)
    return datasets.Dataset.from_dict({"image": list(pixels), "label": y.tolist()},
                                      features=datasets.Features({"image": feature, "label": datasets.Value("int64")}))


def config(on_disk, **kwargs) -> CleanConfig:
    return CleanConfig(feature_columns=("image",), model="cnn", gex=GEX, fit=FIT,
                       featurize=FeaturizeConfig(on_disk=on_disk), **kwargs)


@pytest.fixture(scope="module")
def source() -> datasets.Dataset:
    return images()


@pytest.fixture(scope="module")
def both(source, tmp_path_factory):
    """Prepared rows and their features in memory and in a store folder."""
    prepared = prepare(source, config(False))
    memory = featurize_step(prepared, config(False))
    folder = tmp_path_factory.mktemp("store")
    disk = featurize_step(prepared, config(True), store_dir=folder)
    return prepared, memory, disk


def test_store_holds_raw_pixels_and_gives_the_in_memory_values(both):
    _, memory, disk = both
    assert isinstance(memory.X, np.ndarray) and isinstance(disk.X, FeatureStore)
    assert disk.store.raw_dtype == "uint8" and disk.X.shape == memory.X.shape == (N, 3, 8, 8)
    np.testing.assert_array_equal(disk.featurizer.mean_, memory.featurizer.mean_)
    np.testing.assert_array_equal(disk.featurizer.scale_, memory.featurizer.scale_)
    np.testing.assert_array_equal(disk.X[:], memory.X)
    np.testing.assert_array_equal(disk.X[7:19], memory.X[7:19])
    data, ref = disk.tensor_data(), memory.tensor_data()
    assert isinstance(data, StreamData) and len(data) == N and data.X.dtype == torch.float32
    assert data.y.dtype == torch.int64 and torch.equal(data.y, ref.y)
    idx = batch_indices(N, 5, 32, torch.Generator().manual_seed(0))
    for i in idx:  # the learner's minibatches, 1-D
        assert torch.equal(data.X[i], ref.X[i])
    chains = torch.stack(idx[:3])  # train_chains' (C, B) index
    assert data.X[chains].shape == (3, 32, 3, 8, 8) and torch.equal(data.X[chains], ref.X[chains])
    half = np.arange(0, N, 2)
    sub, ref_sub = data.subset(half), ref.subset(half)
    assert len(sub) == N // 2 and torch.equal(sub.y, ref_sub.y)
    assert torch.equal(sub.X[torch.tensor([3, 0, 5])], ref_sub.X[torch.tensor([3, 0, 5])])
    for fmt in ("arrow", "torch"):  # through a DataLoader over the dataset in that format
        batches = list(StreamData(disk.store, ref.y, format=fmt).subset(half).eval_batches(64))
        assert [s for s, _ in batches] == list(range(0, N // 2, 64))
        assert torch.equal(torch.cat([b for _, b in batches]), ref_sub.X)


def test_normalisation_in_small_blocks_gives_the_same_values(both, monkeypatch):
    from influence_stage.data import feature_store

    _, memory, disk = both
    monkeypatch.setattr(feature_store, "NORMALIZE_BLOCK", 500)  # 2 rows of 3*8*8 values per block
    np.testing.assert_array_equal(disk.X[:], memory.X)
    np.testing.assert_array_equal(disk.X[[5, 1, 299, 0, 7]], memory.X[[5, 1, 299, 0, 7]])


def test_float_images_are_stored_as_float32_with_the_same_values(tmp_path):
    ds = images(60, dtype=np.float32)
    prepared = prepare(ds, config(False))
    memory = featurize_step(prepared, config(False))
    disk = featurize_step(prepared, config(True), store_dir=tmp_path / "f")
    assert disk.store.raw_dtype == "float32"
    np.testing.assert_array_equal(disk.X[:], memory.X)
    again = disk.featurizer.transform(prepared.dataset, store_dir=tmp_path / "g")  # the fitted featurizer, on disk
    assert isinstance(again, FeatureStore)
    np.testing.assert_array_equal(again[:], memory.X)


def test_scores_and_loss_matrix_equal_the_in_memory_run(both):
    prepared, memory, disk = both
    cfg = config(False)
    results = []
    for features in (memory, disk):
        learner = make_model_step(features, cfg, prepared=prepared)
        results.append((learner, score_step(learner, features, cfg, prepared=prepared), features))
    (l_mem, r_mem, f_mem), (l_disk, r_disk, f_disk) = results
    assert isinstance(learner_data(l_disk, prepared, f_disk), StreamData)
    np.testing.assert_array_equal(r_disk.scores, r_mem.scores)
    np.testing.assert_array_equal(r_disk.loss_matrix, r_mem.loss_matrix)
    np.testing.assert_array_equal(r_disk.base_loss, r_mem.base_loss)
    L = loss_matrix(l_disk, r_disk.members, learner_data(l_disk, prepared, f_disk), batch_size=50)
    np.testing.assert_array_equal(L, r_mem.loss_matrix)


def test_auto_scale_and_mlp_chains_match_in_memory(source):
    """The automatic scale (fresh copies trained on subsets) and batched chains (2-D index) on a store."""
    import torch.nn as nn

    from influence_stage.engine.models import mlp

    cfg = CleanConfig(feature_columns=("image",), gex=GEXConfig(chains=2, cycles=1, lr_grid=(0.1, 0.3),
                                                                holdout_epochs=2, eval_batch_size=128),
                      fit=FIT, fit_loaded=True)
    prepared = prepare(source.select(range(150)), cfg)
    scores = []
    for on_disk in (False, True):
        features = featurize_step(prepared, cfg.model_copy(update={"featurize": FeaturizeConfig(on_disk=on_disk)}))
        module = nn.Sequential(nn.Flatten(), mlp(3 * 8 * 8, K, seed=0))
        learner = make_model_step(features, cfg, model=module, prepared=prepared)
        result = score_step(learner, features, cfg, prepared=prepared)
        assert result.auto is not None and result.oos_proba is not None  # the scale ran, with its yardstick
        scores.append(result.scores)
    np.testing.assert_array_equal(scores[1], scores[0])


def test_whole_stage_on_disk(source):
    result = run_pipeline(source, config(True, threshold="budget:0.1"))
    assert isinstance(result.features.X, FeatureStore)
    assert result.cleaned.num_rows == N - int(result.decisions.table["is_issue"].sum())
    assert result.decisions.table["is_issue"].sum() > 0


def test_temporary_store_is_removed_when_features_go(source):
    prepared = prepare(source.select(range(40)), config(True))
    features = featurize_step(prepared, config(True))
    folder = features.store.folder
    assert folder.is_dir() and any(folder.iterdir())
    data = features.tensor_data()
    del features
    gc.collect()
    assert folder.is_dir()  # still read by data
    assert len(data.X[torch.arange(5)]) == 5
    del data
    gc.collect()
    assert not folder.exists()


def test_given_folder_is_kept(source, tmp_path):
    prepared = prepare(source.select(range(40)), config(True))
    features = featurize_step(prepared, config(True), store_dir=tmp_path / "keep")
    del features
    gc.collect()
    assert (tmp_path / "keep" / "store.json").is_file()
    reopened = FeatureStore.open(tmp_path / "keep")
    assert reopened.shape == (40, 3, 8, 8)
    with pytest.raises(InvalidInputError, match="already holds a store"):
        featurize_step(prepared, config(True), store_dir=tmp_path / "keep")


def test_auto_follows_the_size_limit(source):
    prepared = prepare(source.select(range(40)), config("auto"))
    small = featurize_step(prepared, config("auto"))
    assert isinstance(small.X, np.ndarray)  # 40*3*8*8*4 bytes, far below 1 GiB: the default is unchanged
    tight = CleanConfig(feature_columns=("image",), featurize=FeaturizeConfig(on_disk="auto", on_disk_above=1000))
    assert isinstance(featurize_step(prepared, tight).X, FeatureStore)


def test_bad_option_values_are_clear_errors():
    for bad in ("yes", 1, "disk"):
        with pytest.raises(InvalidInputError, match=rf"featurize.on_disk.*found {bad!r}"):
            CleanConfig.from_mapping({"featurize": {"on_disk": bad}})
    with pytest.raises(InvalidInputError, match=r"featurize.on_disk_above.*found 0"):
        CleanConfig.from_mapping({"featurize": {"on_disk_above": 0}})


def test_on_disk_true_refused_for_tabular_features():
    ds = datasets.Dataset.from_dict({"a": [0.1, 0.2, 0.3, 0.4] * 5, "label": [0, 1] * 10})
    cfg = CleanConfig(featurize=FeaturizeConfig(on_disk=True))
    with pytest.raises(InvalidInputError, match="on_disk=True keeps image features on disk; the feature columns "
                                                r"\['a'\] are tabular"):
        featurize_step(prepare(ds, cfg), cfg)


def test_shifted_views_of_rows_on_disk_equal_the_in_memory_views(both):
    from influence_stage.engine.auxiliary import held_out_proba

    prepared, memory, disk = both
    cfg = config(False)
    learner = make_model_step(memory, cfg, prepared=prepared)
    on_disk = learner_data(learner, prepared, disk)
    assert isinstance(on_disk, StreamData)
    in_memory = learner_data(learner, prepared, memory)
    for views in (1, 5, 9):
        np.testing.assert_array_equal(held_out_proba(learner, on_disk, views), held_out_proba(learner, in_memory, views))
    # a learner that reads X whole (a scikit-learn model) sees the same shifted rows as the in-memory copy
    from influence_stage.engine.training import ShiftedRows, shift_image

    shifted = ShiftedRows(on_disk, 1, -1)
    np.testing.assert_array_equal(shifted.X.numpy(), shift_image(in_memory.X, 1, -1).cpu().numpy())
    assert len(shifted) == len(on_disk) and shifted.y is on_disk.y
