"""A saved InfluenceCleaner restores only checksummed state: manifest.json checks itself, the rest is checked by it."""

from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from influence_stage.api import InfluenceCleaner  # noqa: E402
from influence_stage.api.persist import manifest_digest  # noqa: E402
from influence_stage.config import FitConfig, GEXConfig  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X, y = load_digits(return_X_y=True)
    cleaner = InfluenceCleaner(gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.4), fit_config=FitConfig(epochs=5),
                               random_state=0).fit(X[:200], y[:200])
    folder = cleaner.save(tmp_path_factory.mktemp("saved") / "cleaner")
    return cleaner, folder, (folder / "manifest.json").read_bytes()


@pytest.fixture()
def manifest(saved):
    """manifest.json as saved, restored after each test."""
    _, folder, original = saved
    path = folder / "manifest.json"
    yield path
    path.write_bytes(original)


def test_the_manifest_holds_the_digest_of_its_own_content(saved, manifest):
    cleaner, folder, _ = saved
    data = json.loads(manifest.read_text())
    assert data["format_version"] == 2 and data["manifest_sha256"] == manifest_digest(data)
    assert len(data["manifest_sha256"]) == 64 and set(data["files"]) == {
        "config.json", "decisions.parquet", "scores.parquet", "arrays.safetensors", "members.safetensors",
        "issues.parquet"}
    # the layout of the file is not content: re-indented, it still loads, with the same threshold
    manifest.write_text(json.dumps(data, indent=4))
    assert InfluenceCleaner.load(folder).threshold_ == cleaner.threshold_


def test_one_edited_byte_of_the_threshold_fails_load(saved, manifest):
    cleaner, folder, original = saved
    text = original.decode()
    value = json.dumps(json.loads(text)["threshold"]["value"])  # e.g. 0.6633...
    at = text.index(f'"value": {value}') + len('"value": ') + value.index(".") + 1  # first decimal digit
    edited = text[:at] + ("9" if text[at] != "9" else "8") + text[at + 1:]
    assert len(edited) == len(text) and sum(a != b for a, b in zip(edited, text)) == 1
    manifest.write_text(edited)
    with pytest.raises(InvalidInputError, match=r"manifest.json changed since it was saved: the sha256 of its "
                                                r"content is [0-9a-f]{16}\.\.\., the digest saved in it "
                                                r"\(manifest_sha256\) is [0-9a-f]{16}\.\.\..*Fix: save the cleaner"):
        InfluenceCleaner.load(folder)


@pytest.mark.parametrize("edit", ["labels", "params", "fingerprint", "file-digest", "no-digest"])
def test_any_hand_edited_state_fails_load(saved, manifest, edit):
    _, folder, _ = saved
    data = json.loads(manifest.read_text())
    if edit == "labels":
        data["encoding"]["names"][0], data["encoding"]["names"][1] = data["encoding"]["names"][1], \
            data["encoding"]["names"][0]
    elif edit == "params":
        data["params"]["action"] = "relabel"
    elif edit == "fingerprint":
        data["dataset_fingerprint"] = "0" * len(data["dataset_fingerprint"])
    elif edit == "file-digest":  # pointing the manifest at a replaced file is an edit of the manifest too
        data["files"]["scores.parquet"] = "0" * 64
    else:
        del data["manifest_sha256"]
    manifest.write_text(json.dumps(data, indent=1))
    with pytest.raises(InvalidInputError, match=r"manifest.json changed since it was saved"):
        InfluenceCleaner.load(folder)


def test_a_manifest_that_is_not_json_or_of_another_version_is_named(saved, manifest):
    _, folder, original = saved
    manifest.write_bytes(original[:-5])
    with pytest.raises(InvalidInputError, match=r"manifest.json is not the JSON InfluenceCleaner.save wrote"):
        InfluenceCleaner.load(folder)
    manifest.write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match=r"holds a JSON list, not the object"):
        InfluenceCleaner.load(folder)
    data = json.loads(original)
    data["format_version"] = 1  # a save of the version before the manifest's own digest
    manifest.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=r"version 1; expected 'influence_stage.InfluenceCleaner' version 2"):
        InfluenceCleaner.load(folder)


def test_the_untouched_save_restores_every_number(saved):
    cleaner, folder, _ = saved
    loaded = InfluenceCleaner.load(folder)
    assert loaded.threshold_ == cleaner.threshold_ and loaded.ft_lr_ == cleaner.ft_lr_
    np.testing.assert_array_equal(loaded.scores_, cleaner.scores_)
    np.testing.assert_array_equal(loaded.classes_, cleaner.classes_)


def test_a_cleaner_saved_before_the_drop_cap_rename_loads_with_its_cap_as_drop_cap(saved, tmp_path):
    import shutil

    from influence_stage.api.persist import sha256

    _, folder, _ = saved
    old = shutil.copytree(folder, tmp_path / "old")
    config = json.loads((old / "config.json").read_text("utf-8"))
    del config["drop_cap"]
    config["max_drop_fraction"] = 0.25  # the decision cap's name before the rename
    (old / "config.json").write_text(json.dumps(config, indent=1), "utf-8")
    data = json.loads((old / "manifest.json").read_text())
    data["files"]["config.json"] = sha256(old / "config.json")  # as that version saved it: under its checksum
    data["manifest_sha256"] = manifest_digest(data)
    (old / "manifest.json").write_text(json.dumps(data, indent=1))
    loaded = InfluenceCleaner.load(old)
    assert loaded.config_.drop_cap == 0.25
    assert json.loads((old / "config.json").read_text("utf-8"))["max_drop_fraction"] == 0.25  # the file untouched
    config["max_drop_fraction"] = 0.5  # and the checksum still guards it
    (old / "config.json").write_text(json.dumps(config, indent=1), "utf-8")
    with pytest.raises(InvalidInputError, match=r"config.json changed since it was saved"):
        InfluenceCleaner.load(old)


def test_a_cleaner_saved_before_a_default_changed_keeps_the_value_it_was_fitted_under(saved, tmp_path):
    """Before GEXConfig.estimate_count existed every fit counted with the confident joint: a cleaner saved
    then loads with that count (its per-class noise shares and any decide-again follow it), not the new
    default; likewise every field of FIELDS_BEFORE_SAVED, such as the halves' rate on images before
    image_aux_lr_scale existed."""
    import shutil

    from influence_stage.api.persist import FIELDS_BEFORE_SAVED, params_from_json, saved_config, sha256

    # the table holds only fields whose value before differs from today's default (else it would change nothing)
    assert all(GEXConfig.model_fields[k].default != v for k, v in FIELDS_BEFORE_SAVED.items())
    cleaner, folder, _ = saved
    assert cleaner.config_.gex.estimate_count == "both"
    old = shutil.copytree(folder, tmp_path / "old")
    config = json.loads((old / "config.json").read_text("utf-8"))
    for field in FIELDS_BEFORE_SAVED:  # every field whose default changed since it was added
        del config["gex"][field]
    (old / "config.json").write_text(json.dumps(config, indent=1), "utf-8")
    data = json.loads((old / "manifest.json").read_text())
    data["files"]["config.json"] = sha256(old / "config.json")
    data["manifest_sha256"] = manifest_digest(data)
    (old / "manifest.json").write_text(json.dumps(data, indent=1))
    loaded = InfluenceCleaner.load(old)
    assert loaded.config_.gex.estimate_count == "confident_joint"
    assert loaded.config_.gex.image_aux_lr_scale == 1.0 and cleaner.config_.gex.image_aux_lr_scale == 4.0
    assert (loaded.config_.gex.image_aux_views, loaded.config_.gex.image_aux_shift) == (1, 0)
    assert (cleaner.config_.gex.image_aux_views, cleaner.config_.gex.image_aux_shift) == (5, 2)
    assert {k: getattr(loaded.config_.gex, k) for k in FIELDS_BEFORE_SAVED} == FIELDS_BEFORE_SAVED
    np.testing.assert_array_equal(loaded.scores_, cleaner.scores_)
    assert InfluenceCleaner.load(folder).config_.gex.estimate_count == "both"  # a saved count is kept as saved
    assert saved_config({"gex": {"estimate_count": "both"}})["gex"]["estimate_count"] == "both"
    # an estimator parameter saved as a GEXConfig dump without the field, likewise
    dump = GEXConfig(chains=2).model_dump(mode="json")
    del dump["estimate_count"]
    params = params_from_json({"gex_config": {"__config__": "GEXConfig", "value": dump}})
    assert params["gex_config"].estimate_count == "confident_joint" and params["gex_config"].chains == 2
    assert params["gex_config"].image_aux_lr_scale == 4.0  # saved with the field: kept as saved


def test_the_renamed_key_is_read_only_where_drop_cap_is_absent():
    from influence_stage.api.persist import saved_config

    assert saved_config({"max_drop_fraction": 0.2, "action": "drop"}) == {"drop_cap": 0.2, "action": "drop"}
    assert saved_config({"drop_cap": 0.1}) == {"drop_cap": 0.1}


def test_a_featurize_config_parameter_is_saved_and_restored():
    from influence_stage.api.persist import params_from_json, params_to_json
    from influence_stage.config.featurize import FeaturizeConfig

    params = InfluenceCleaner(featurize_config=FeaturizeConfig(text_model="enc", text_components=8)).get_params()
    back = params_from_json(json.loads(json.dumps(params_to_json(params))))
    assert back["featurize_config"] == FeaturizeConfig(text_model="enc", text_components=8)


def test_a_loaded_cleaner_reports_how_its_scores_were_built(saved):
    """The report's note on the score depends on evidence first (engine.scores.evidence_first): it is saved."""
    from influence_stage.report.estimator import estimator_summary

    cleaner, folder, _ = saved
    loaded = InfluenceCleaner.load(folder)
    assert cleaner.result_.evidence_first is True  # digits: a reliable cross-fitted model
    assert estimator_summary(loaded)["evidence first"] is estimator_summary(cleaner)["evidence first"] is True
    assert "evidence first: rows that favour their own label" in loaded.report().html
