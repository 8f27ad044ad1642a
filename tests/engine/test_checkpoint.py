"""Checkpoints: round trips, refusal of pickled objects, corrupt files, mismatches named in errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from influence_stage.engine.checkpoint import (
    check_model,
    load_into,
    load_model,
    load_state_dict,
    meta_path,
    save_checkpoint,
)
from influence_stage.errors import CheckpointError, InvalidInputError, InvalidTypeError
from influence_stage.engine.models import cnn, mlp

SUFFIXES = [".pt", pytest.param(".safetensors", id="safetensors")]

_EXECUTED: list[bool] = []


def _mark_executed() -> None:
    """Stands in for a malicious callable: records that unpickling called it."""
    _EXECUTED.append(True)


class _Payload:
    """Pickles as a call of ``_mark_executed`` (the shape of an ``os.system`` payload, harmless)."""

    def __reduce__(self):
        return (_mark_executed, ())


class _Harmless:
    value = 3


def _x(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _needs(suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_gives_equal_outputs(tmp_path, suffix):
    _needs(suffix)
    src = mlp(64, 10, hidden=(16,), seed=0)
    path = save_checkpoint(src, tmp_path / f"mlp{suffix}")
    dst = mlp(64, 10, hidden=(16,), seed=1)
    x = _x((7, 64))
    assert not torch.equal(src(x), dst(x))  # different init, so equality below is the load's doing
    load_into(dst, path)
    assert torch.equal(src(x), dst(x))
    state = load_state_dict(path)
    assert set(state) == set(src.state_dict())
    assert all(t.device.type == "cpu" for t in state.values())
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_load_model_from_sidecar_rebuilds_and_checks(tmp_path, suffix):
    _needs(suffix)
    src = cnn(1, 10, width=8, seed=0)
    src.train()
    src(_x((16, 1, 8, 8), seed=3))  # move the batch-norm running statistics off their defaults
    src.eval()
    path = save_checkpoint(src, tmp_path / f"cnn{suffix}",
                           meta={"builder": "cnn", "input_shape": [1, 8, 8], "n_classes": 10,
                                 "builder_kwargs": {"width": 8}, "note": "kept"})
    assert json.loads(meta_path(path).read_text())["note"] == "kept"
    loaded = load_model(path, input_shape=(1, 8, 8), n_classes=10)
    assert not loaded.training
    x = _x((5, 1, 8, 8))
    assert torch.equal(src(x), loaded(x))


def test_saving_without_meta_removes_stale_sidecar(tmp_path):
    path = save_checkpoint(mlp(20, 5), tmp_path / "m.pt", meta={"builder": "mlp", "n_classes": 5})
    save_checkpoint(mlp(20, 3), path)
    assert not meta_path(path).exists()
    assert load_model(path, builder="mlp", input_shape=(20,), n_classes=3) is not None


def test_load_model_with_builder_and_no_sidecar(tmp_path):
    src = mlp(20, 3, seed=0)  # build_model's default width, so the builder name suffices
    path = save_checkpoint(src, tmp_path / "m.pt")
    loaded = load_model(path, builder="mlp", input_shape=(20,), n_classes=3)
    x = _x((4, 20))
    assert torch.equal(src(x), loaded(x))


def test_load_model_without_builder_or_sidecar(tmp_path):
    path = save_checkpoint(mlp(20, 3), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="no builder for checkpoint .*m.pt"):
        load_model(path, input_shape=(20,), n_classes=3)


def test_load_model_builder_disagrees_with_sidecar(tmp_path):
    path = save_checkpoint(mlp(20, 3), tmp_path / "m.pt", meta={"builder": "mlp"})
    with pytest.raises(CheckpointError, match="builder='cnn' was given but .*saved from 'mlp'"):
        load_model(path, builder="cnn", input_shape=(20,), n_classes=3)


def test_load_model_trained_for_other_classes(tmp_path):
    path = save_checkpoint(mlp(20, 5), tmp_path / "m.pt",
                           meta={"builder": "mlp", "input_shape": [20], "n_classes": 5})
    with pytest.raises(InvalidInputError, match="model outputs 5 classes, the data has 10"):
        load_model(path, input_shape=(20,), n_classes=10)


def test_load_model_trained_for_other_features(tmp_path):
    path = save_checkpoint(mlp(32, 3), tmp_path / "m.pt",
                           meta={"builder": "mlp", "input_shape": [32], "n_classes": 3})
    with pytest.raises(InvalidInputError, match="expects 32 input features; the data has 64"):
        load_model(path, input_shape=(64,), n_classes=3)


# -- unreadable files ----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found: .*nope.pt"):
        load_state_dict(tmp_path / "nope.pt")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(CheckpointError, match="is not a file"):
        load_state_dict(tmp_path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_random_bytes(tmp_path, suffix):
    _needs(suffix)
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match=f"noise{suffix} could not be read.*corrupt"):
        load_state_dict(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_truncated_file(tmp_path, suffix):
    _needs(suffix)
    path = save_checkpoint(mlp(64, 10), tmp_path / f"m{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"m{suffix} could not be read.*truncated"):
        load_state_dict(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_state_dict(path)


# -- never unpickle objects ----------------------------------------------------------------------


def test_pickled_object_refused_by_weights_only(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"w": torch.zeros(2), "obj": _Harmless()}, path)
    with pytest.raises(CheckpointError, match=r"obj.pt was refused by torch.load\(weights_only=True\).*_Harmless"):
        load_state_dict(path)


def test_reduce_payload_is_refused_and_not_run(tmp_path):
    path = tmp_path / "payload.pt"
    torch.save({"w": torch.zeros(2), "x": _Payload()}, path)
    _EXECUTED.clear()
    with pytest.raises(CheckpointError, match=r"refused by torch.load\(weights_only=True\).*_mark_executed"):
        load_state_dict(path)
    assert _EXECUTED == []
    module = mlp(2, 2)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_into(module, path)
    assert _EXECUTED == []


def test_whole_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(mlp(4, 2), path)
    with pytest.raises(CheckpointError, match="weights_only.*Sequential"):
        load_state_dict(path)


@pytest.mark.parametrize("obj, found", [
    (torch.zeros(3, 2), r"a single tensor of shape \(3, 2\)"),
    ([torch.zeros(3)], "holds a list"),
    ({"state_dict": {"w": torch.zeros(1)}, "epoch": 3}, "nested under 'state_dict'"),
    ({"w": torch.zeros(1), "epoch": 3}, "entry 'epoch' is a int"),
    ({}, "empty dict"),
])
def test_not_a_state_dict(tmp_path, obj, found):
    path = tmp_path / "thing.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=f"thing.pt .*{found}"):
        load_state_dict(path)


# -- mismatches ----------------------------------------------------------------------------------


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    path = save_checkpoint(mlp(64, 10, hidden=(16,)), tmp_path / "m.pt")
    with pytest.raises(CheckpointError,
                       match=r"shape mismatch at '0.weight': the model expects \(32, 64\), the file has \(16, 64\)"):
        load_into(mlp(64, 10, hidden=(32,)), path)


def test_missing_and_unexpected_keys_listed(tmp_path):
    path = save_checkpoint(mlp(8, 2, hidden=(4, 4)), tmp_path / "m.pt")  # keys 0, 2, 4
    with pytest.raises(CheckpointError) as info:
        load_into(mlp(8, 2, hidden=(4,)), path)  # keys 0, 2
    msg = str(info.value)
    assert "unexpected keys (in the file, not in the model): '4.weight', '4.bias'" in msg
    assert "shape mismatch at '2.weight'" in msg  # (2, 4) in the model, (4, 4) in the file
    path2 = save_checkpoint(mlp(8, 2, hidden=(4,)), tmp_path / "m2.pt")
    with pytest.raises(CheckpointError, match="missing keys .*'4.weight', '4.bias'"):
        load_into(mlp(8, 2, hidden=(4, 4)), path2)


def test_check_model_class_mismatch():
    with pytest.raises(InvalidInputError, match="model outputs 5 classes, the data has 10"):
        check_model(mlp(64, 5), (64,), 10)


def test_check_model_feature_mismatch():
    with pytest.raises(InvalidInputError, match=r"rows of shape \(32,\).*expects 64 input features; the data has 32"):
        check_model(mlp(64, 10), (32,), 10)


def test_check_model_channel_mismatch():
    with pytest.raises(InvalidInputError, match="expects 1 input channels; the data has 3"):
        check_model(cnn(1, 10, width=4), (3, 8, 8), 10)


def test_check_model_accepts_and_keeps_mode():
    model = cnn(1, 10, width=4)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_model(model, (1, 8, 8), 10)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no BN stat update


def test_save_rejects_bad_input(tmp_path):
    with pytest.raises(InvalidTypeError, match="needs a torch.nn.Module or a state dict"):
        save_checkpoint([1, 2], tmp_path / "x.pt")
    with pytest.raises(InvalidInputError, match="meta must be JSON-serialisable"):
        save_checkpoint(mlp(2, 2), tmp_path / "x.pt", meta={"f": object()})
    assert not os.path.exists(tmp_path / "x.pt")


@pytest.mark.parametrize("blocks", [2, 3])
@pytest.mark.parametrize("meta", [None, {"builder": "cnn", "input_shape": [1, 8, 8], "n_classes": 10,
                                         "builder_kwargs": {"width": 8}}])
def test_a_cnn_checkpoint_loads_with_the_blocks_its_weights_have(tmp_path, meta, blocks):
    # no sidecar, or one naming the width only (as written before the CNN had blocks): the weights say how many
    src = cnn(1, 10, width=8, blocks=blocks, seed=0).eval()
    path = save_checkpoint(src, tmp_path / "cnn.pt", meta=meta)
    loaded = load_model(path, builder="cnn", input_shape=(1, 8, 8), n_classes=10)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in loaded.modules()) == blocks
    x = _x((3, 1, 8, 8))
    assert torch.equal(src(x), loaded(x))


def test_cnn_blocks_shape_the_network_and_two_blocks_keep_the_earlier_layers():
    three, two = cnn(3, 10, width=8, blocks=3, seed=0), cnn(3, 10, width=8, seed=0)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in three.modules()) == 3
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in three.modules()) == 2
    # the two-block CNN keeps the earlier layer indices, so its state dicts load unchanged
    assert {k for k in two.state_dict() if k.endswith("weight")} == {"0.weight", "1.weight", "4.weight", "5.weight",
                                                                     "9.weight"}
    assert three(_x((2, 3, 8, 8))).shape == (2, 10)  # 8×8 still works: two pools leave 2×2
    with pytest.raises(InvalidInputError, match="blocks"):
        cnn(1, 10, blocks=0)
