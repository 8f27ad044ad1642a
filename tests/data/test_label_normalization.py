"""Labels that differ only in whitespace, case or Unicode normal form: refused by default, merged on request."""

from __future__ import annotations

import os
import unicodedata

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from influence_stage.data.labels import (  # noqa: E402
    LABEL_NORMALIZATIONS,
    check_label_spellings,
    check_normalization,
    encode_labels,
    label_collisions,
    normalize_label,
    normalize_label_column,
)
from influence_stage.data.sources import load_source  # noqa: E402
from influence_stage.errors import InvalidInputError  # noqa: E402
from influence_stage.stage.steps import CleanConfig, prepare  # noqa: E402

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NFD_CAFE = unicodedata.normalize("NFD", "café")


def _ds(labels):
    return load_source(pd.DataFrame({"x": np.arange(len(labels), dtype=np.float64), "label": list(labels)}))


# --------------------------------------------------------------------------------------------------
# examples
# --------------------------------------------------------------------------------------------------


def test_whitespace_collision_is_refused_in_one_line_naming_both():
    ds = _ds(["cat", "cat ", "dog", "dog", "cat", "cat "])
    with pytest.raises(InvalidInputError) as info:
        encode_labels(ds, "label")
    message = str(info.value)
    assert "'cat' and 'cat '" in message and "\n" not in message
    assert "normalize_labels: ['strip']" in message


def test_the_stage_refuses_the_collision_before_any_training():
    df = pd.DataFrame({"x": np.arange(8, dtype=np.float64), "label": ["Cat", "cat", "dog", "dog"] * 2})
    with pytest.raises(InvalidInputError, match=r"'Cat' and 'cat'.*normalize_labels: \['casefold'\]"):
        prepare(df, CleanConfig())


def test_nfc_and_nfd_spellings_are_told_apart_in_the_message():
    ds = _ds(["café", NFD_CAFE, "tea", "tea"])
    with pytest.raises(InvalidInputError, match=r"'cafe\\u0301' and 'caf\\xe9'.*\['nfc'\]"):
        encode_labels(ds, "label")


def test_the_option_merges_and_rewrites_the_label_column():
    labels = ["cat", "cat ", "Dog", "dog", NFD_CAFE, "café", "cat"]
    out, enc = normalize_label_column(_ds(labels), "label", ["strip", "casefold", "nfc"])
    assert enc.names == ("café", "cat", "dog")
    assert enc.codes.tolist() == [1, 1, 2, 2, 0, 0, 1]
    assert enc.normalization == ("nfc", "casefold", "strip")
    assert dict(enc.merged) == {"café": (NFD_CAFE, "café"), "cat": ("cat", "cat "), "dog": ("Dog", "dog")}
    assert out["label"] == ["cat", "cat", "dog", "dog", "café", "café", "cat"]
    assert out["x"] == list(np.arange(7, dtype=np.float64)) and out.column_names == ["x", "label", "row_id"]


def test_a_collision_left_under_a_normalisation_not_asked_for_is_refused():
    ds = _ds(["cat", "Cat ", "dog", "dog"])
    with pytest.raises(InvalidInputError, match=r"'Cat ' and 'cat'.*\['casefold', 'strip'\]"):
        normalize_label_column(ds, "label", ["strip"])


def test_no_collision_leaves_data_and_encoding_unchanged():
    ds = _ds(["b", "a", "b", "c"])
    out, enc = normalize_label_column(ds, "label", ["strip"])
    assert out is ds and enc.names == ("a", "b", "c") and enc.codes.tolist() == [1, 0, 1, 2]
    assert enc.normalization == ("strip",) and enc.merged == ()


def test_non_string_labels_pass_through():
    ds = load_source((np.zeros((4, 2)), np.array([3, 1, 3, 1])))
    out, enc = normalize_label_column(ds, "label", ["strip", "casefold"])
    assert out is ds and enc.values == (1, 3) and enc.normalization == ()


def test_fitted_encoding_reads_new_data_with_its_normalisation():
    _, enc = normalize_label_column(_ds(["cat", "cat ", "dog", "dog"]), "label", ["strip"])
    codes = encode_labels(_ds(["  dog", "cat", "cat  "]), "label", fitted=enc).codes
    assert codes.tolist() == [1, 0, 0]


def test_unknown_normalisation_is_refused():
    with pytest.raises(InvalidInputError, match=r"normalize_labels holds \['lower'\]"):
        check_normalization(["strip", "lower"])
    assert check_normalization("nfc") == ("nfc",) and check_normalization(None) == ()


def test_the_stage_merges_under_the_option_and_records_it():
    df = pd.DataFrame({"x": np.arange(8, dtype=np.float64), "label": ["Cat", "cat", "dog", "dog"] * 2})
    prepared = prepare(df, CleanConfig(normalize_labels=("casefold",)))
    assert prepared.encoding.n_classes == 2
    assert sorted(set(prepared.dataset["label"])) == ["cat", "dog"]
    assert prepared.encoding.normalization == ("casefold",)
    from influence_stage.stage.run import run

    summary = run(df, CleanConfig(normalize_labels=("casefold",), gex={"ft_lr": 0.1, "chains": 2, "cycles": 1},
                                  fit={"epochs": 2}), validate=False).summary
    assert summary["labels normalized"] == {"by": ["casefold"], "merged": {"cat": ["Cat", "cat"]}}


def test_clean_config_carries_the_option():
    assert CleanConfig().normalize_labels == ()
    assert CleanConfig(normalize_labels=["strip", "nfc"]).normalize_labels == ("strip", "nfc")
    with pytest.raises(ValueError):
        CleanConfig(normalize_labels=["lower"])


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------

base_labels = st.lists(st.sampled_from(["cat", "dog", "bird", "café", "ant", "emu"]), min_size=2, max_size=5,
                       unique=True)
spellings = st.sampled_from([
    lambda v: v, lambda v: v + " ", lambda v: " " + v, lambda v: v.upper(), lambda v: v.title(),
    lambda v: unicodedata.normalize("NFD", v),
])


@st.composite
def label_sets(draw):
    """``(rows, true class of each row)``: rows spell each class in one or more variant forms."""
    classes = draw(base_labels)
    rows, truth = [], []
    for c in classes:
        variants = draw(st.lists(spellings, min_size=1, max_size=3))
        for _ in range(draw(st.integers(2, 6))):
            rows.append(draw(st.sampled_from(variants))(c))
            truth.append(c)
    order = draw(st.permutations(range(len(rows))))
    return [rows[i] for i in order], [truth[i] for i in order]


@FAST
@given(label_sets())
def test_any_collision_is_refused_and_all_three_normalisations_merge_exactly_the_classes(case):
    rows, truth = case
    ds = _ds(rows)
    if len(set(rows)) > len(set(truth)):  # some class is spelled two ways
        with pytest.raises(InvalidInputError, match="differ only in whitespace, case or Unicode"):
            encode_labels(ds, "label")
    out, enc = normalize_label_column(ds, "label", list(LABEL_NORMALIZATIONS))
    expected = sorted({normalize_label(t, LABEL_NORMALIZATIONS) for t in truth})
    assert list(enc.names) == expected
    assert [enc.names[c] for c in enc.codes] == [normalize_label(t, LABEL_NORMALIZATIONS) for t in truth]
    counts = np.bincount(enc.codes, minlength=enc.n_classes)
    assert counts.tolist() == [sum(normalize_label(t, LABEL_NORMALIZATIONS) == n for t in truth) for n in expected]
    assert sorted(n for n, _ in enc.merged) == sorted(
        n for n in expected if len({r for r, t in zip(rows, truth) if normalize_label(t, LABEL_NORMALIZATIONS) == n}) > 1)
    assert out["label"] == [enc.names[c] for c in enc.codes]


@FAST
@given(st.lists(st.text(alphabet="abcXYZ é", min_size=1, max_size=4), min_size=1, max_size=12))
def test_labels_without_collisions_encode_as_before(values):
    if label_collisions(set(values)):
        return
    ds = _ds(values)
    out, enc = normalize_label_column(ds, "label", ())
    plain = encode_labels(ds, "label")
    assert out is ds and enc.names == plain.names == tuple(sorted(set(values)))
    assert enc.codes.tolist() == plain.codes.tolist() and enc.merged == ()


@FAST
@given(st.lists(st.text(alphabet="aA é\u0301", min_size=1, max_size=4), min_size=1, max_size=10))
def test_collisions_are_exactly_the_groups_equal_after_normalisation(values):
    groups = label_collisions(values)
    for g in groups:
        assert len({normalize_label(v, LABEL_NORMALIZATIONS) for v in g}) == 1 and len(g) > 1
    flat = [v for g in groups for v in g]
    assert len(flat) == len(set(flat))
    keys = [normalize_label(v, LABEL_NORMALIZATIONS) for v in set(values)]
    assert sum(len(g) for g in groups) == sum(keys.count(k) for k in set(keys) if keys.count(k) > 1)


def test_spelling_check_works_on_raw_values_without_heavy_imports():
    import subprocess
    import sys

    code = ("import sys; from influence_stage.data.spelling import check_label_spellings as c; "
            "c(['a', 'b'], 'y'); print(sorted(m for m in ('datasets', 'pyarrow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
    with pytest.raises(InvalidInputError, match=r"'cat' and 'cat '"):
        check_label_spellings(["cat", "dog", "cat "], "y")
    check_label_spellings(["cat", "dog", "cat "], "y", ["strip"])  # merged: nothing left to refuse
