"""MinHash near-duplicate removal: the same answer as datasketch's own LSH index, in memory flat in N."""

from __future__ import annotations

import os

import numpy as np
import pytest

datasketch = pytest.importorskip("datasketch")

from influence_stage.data import dedup
from influence_stage.data.dedup import LSH_MAX_THRESHOLD, band_layout, near_duplicate_of, shingles

WORDS = ("film plot actor scene story music camera light score drama comedy ending twist cast script "
         "director sound color pace dialogue moment hero villain house night city road river winter").split()


def reference_near_duplicate_of(texts, *, threshold, num_perm=128, shingle_words=3, seed=1):
    """The answer of datasketch's in-memory ``MinHashLSH`` queried document by document (the earlier
    implementation): candidates from the index, kept when ``MinHash.jaccard`` reaches the threshold,
    the earliest match wins, unmatched documents enter the index."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=min(threshold, LSH_MAX_THRESHOLD), num_perm=num_perm)
    kept, out = {}, []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch(list(shingles(text, shingle_words)))
        matches = [k for k in lsh.query(m) if m.jaccard(kept[k]) >= threshold]
        if matches:
            out.append(min(matches))
            continue
        lsh.insert(i, m)
        kept[i] = m
        out.append(-1)
    return np.asarray(out, dtype=np.int64)


def planted_corpus(n_base=120, seed=0):
    """Random documents, and edited copies of earlier ones (1 to 6 words changed) and chains of copies
    of copies, so that some pairs fall just above and some just below each threshold."""
    rng = np.random.default_rng(seed)
    docs = [" ".join(rng.choice(WORDS, size=int(rng.integers(12, 30)))) for _ in range(n_base)]
    for _ in range(n_base):
        words = docs[int(rng.integers(len(docs)))].split()
        for _ in range(int(rng.integers(0, 7))):
            words[int(rng.integers(len(words)))] = str(rng.choice(WORDS))
        if rng.random() < 0.3:
            words = words[: max(3, len(words) - int(rng.integers(1, 4)))]
        docs.insert(int(rng.integers(len(docs) // 2, len(docs) + 1)), " ".join(words))
    docs += ["tiny", "tiny", "", "two words"]
    return docs


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9, 0.95, 1.0])
def test_same_answer_as_datasketch_lsh(threshold):
    docs = planted_corpus()
    want = reference_near_duplicate_of(docs, threshold=threshold)
    got = near_duplicate_of(iter(docs), threshold=threshold)
    assert got.dtype == np.int64 and got.shape == (len(docs),)
    np.testing.assert_array_equal(got, want)
    assert (want >= 0).sum() > 5  # the corpus plants near duplicates at every threshold tested


def test_same_answer_with_other_settings_and_batches(monkeypatch):
    monkeypatch.setattr(dedup, "SIGNATURE_BATCH", 7)  # signatures appended in many small batches
    docs = planted_corpus(n_base=60, seed=3)
    for kw in ({"num_perm": 64, "seed": 5}, {"num_perm": 100, "shingle_words": 2}):  # 100: columns past the bands
        want = reference_near_duplicate_of(docs, threshold=0.75, **kw)
        np.testing.assert_array_equal(near_duplicate_of(docs, threshold=0.75, **kw), want)


def test_shared_band_keys_of_different_bands_add_no_candidate(monkeypatch):
    """Every band key the same (as if all keys collided): every document shares a bucket with every other,
    and the answer is still the index's, since the band values themselves decide."""
    monkeypatch.setattr(dedup, "band_keys", lambda band: np.zeros(len(band), dtype=np.uint64))
    monkeypatch.setattr(dedup, "KEY_CHUNK", 5)
    docs = planted_corpus(n_base=50, seed=7)
    np.testing.assert_array_equal(near_duplicate_of(docs, threshold=0.7),
                                  reference_near_duplicate_of(docs, threshold=0.7))


def test_band_keys_equal_for_equal_bands():
    rng = np.random.default_rng(0)
    band = rng.integers(0, 2 ** 32, size=(1000, 13), dtype=np.uint64).astype(np.uint32)
    band[500] = band[3]
    keys = dedup.band_keys(band)
    assert keys[500] == keys[3] and len(np.unique(keys)) == 999


def test_band_layout_is_datasketchs():
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    assert band_layout(0.8, 128) == [tuple(r) for r in lsh.hashranges] and len(band_layout(0.8, 128)) == lsh.b
    assert band_layout(0.97, 128) == band_layout(LSH_MAX_THRESHOLD, 128)


def test_earliest_kept_document_wins_and_duplicates_of_duplicates_point_to_it():
    base = "the film has a slow start but the ending and the music make up for it in the end"
    docs = [base, "an unrelated sentence about a river at night", base, base + " truly", base]
    of = near_duplicate_of(docs, threshold=0.8)
    assert of.tolist() == [-1, -1, 0, 0, 0]


def test_empty_and_single_inputs_and_temporary_files_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup.tempfile, "tempdir", str(tmp_path))
    assert near_duplicate_of([], threshold=0.8).tolist() == []
    assert near_duplicate_of(["one document"], threshold=0.8).tolist() == [-1]
    assert near_duplicate_of(["a b c d", "a b c d"], threshold=0.8).tolist() == [-1, 0]
    assert os.listdir(tmp_path) == []


def test_a_failing_stream_leaves_no_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup.tempfile, "tempdir", str(tmp_path))

    def texts():
        yield "first document here"
        raise OSError("shard vanished")

    with pytest.raises(OSError, match="shard vanished"):
        near_duplicate_of(texts(), threshold=0.8)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, True, "0.8", None])
def test_bad_threshold_is_refused(bad):
    from influence_stage.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="threshold"):
        near_duplicate_of(["a b c"], threshold=bad)


def test_inventory_exact_duplicates_point_to_the_first_copy_of_acceptable_length(tmp_path):
    """``duplicate_of`` is the first earlier row of acceptable length with the same bytes (a too-long or
    too-short first copy does not count), for every text row; non-text rows have -1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from influence_stage.data.corpus import Corpus, inventory

    texts = ["a", "hello there", "  ", "hello there", None, "Hello there!", "x" * 50, "x" * 50, "hello there",
             "", "ab", "ab", None, "ab"]
    pq.write_table(pa.table({"text": texts}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"text": ["hello there", "ab", "zz top"]}), tmp_path / "b.parquet")
    inv = inventory(Corpus(tmp_path), min_chars=2, max_chars=20, skip_invalid=True)
    assert inv["status"].tolist() == ["too short", "ok", "empty", "duplicate", "not text", "ok", "too long",
                                      "too long", "duplicate", "empty", "ok", "duplicate", "not text", "duplicate",
                                      "duplicate", "duplicate", "ok"]
    assert inv["duplicate_of"].tolist() == [-1, -1, -1, 1, -1, -1, -1, -1, 1, -1, -1, 10, -1, 10, 1, 10, -1]
    inv = inventory(Corpus(tmp_path), min_chars=3, dedup=False, skip_invalid=True)
    assert (inv["status"] == "duplicate").sum() == 0
    assert inv["duplicate_of"].tolist() == [-1, -1, -1, 1, -1, -1, -1, 6, 1, -1, -1, -1, -1, -1, 1, -1, -1]
    assert str(inv["content_hash"].dtype) == "str" and inv["content_hash"].str.len().max() == 32


def test_near_duplicate_groups_lists_keys_with_several_distinct_texts():
    import pandas as pd

    from influence_stage.data.corpus import near_duplicate_groups

    frame = pd.DataFrame({"row": range(8), "near_key": ["k1", "k2", "k1", "", "k2", "k3", "k1", ""],
                          "content_hash": ["a", "b", "c", "d", "b", "e", "a", "f"]})
    # k1: rows 0, 2, 6 (two distinct texts); k2: rows 1, 4 (one text: exact copies, not near); k3 alone
    assert near_duplicate_groups(frame) == [[0, 2, 6]]
    frame.loc[4, "content_hash"] = "g"
    assert near_duplicate_groups(frame) == [[0, 2, 6], [1, 4]] and near_duplicate_groups(frame, limit=1) == [[0, 2, 6]]


def test_near_duplicate_groups_ignore_missing_keys_and_match_arrow_strings():
    import numpy as np
    import pandas as pd

    from influence_stage.data.corpus import near_duplicate_groups

    keys = pd.Series(["k1", None, "k1", "", "k2", None, "k2", "k3"], dtype="str")
    hashes = pd.Series(["a", "b", "c", "d", "e", "f", "e", "g"], dtype="str")
    frame = pd.DataFrame({"row": np.arange(8) + 100, "near_key": keys, "content_hash": hashes})
    # k1: two distinct texts (a group); k2: one text twice (exact copies); missing and empty keys never group
    assert near_duplicate_groups(frame) == [[100, 102]]
    assert near_duplicate_groups(frame.astype({"near_key": object, "content_hash": object})) == [[100, 102]]
    assert near_duplicate_groups(frame.iloc[:0]) == []
