"""Tests of influence_stage.report: figures, the HTML report, the markdown summary, input errors."""

from __future__ import annotations

import base64
import logging
import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, roc_auc_score

from influence_stage.errors import InvalidInputError, InvalidTypeError
from influence_stage.report.common import MARKDOWN_MAX_PAIRS, REPORT_MAX_PAIRS
from influence_stage.report import (
    SECTION_TITLES,
    TOP_ROWS,
    build_report,
    plot_distributional_bias,
    plot_gallery,
    plot_issues_per_class,
    plot_precision_recall,
    plot_score_histogram,
    summary_markdown,
    write_report,
)

N, K, N_BAD = 500, 10, 50
THRESHOLD = 1e-2
EVIL = "<script>alert(1)</script>"
CLASS_NAMES = [f"class {k}" for k in range(K)]
CLASS_NAMES[3] = EVIL
CLASS_NAMES[5] = "a|b $x$"  # a markdown pipe and TeX dollars: must not break tables or mathtext


def _make_table(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """500 rows, 10 classes; 50 truly mislabeled rows in a high log-normal mode; threshold 1e-2."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(N, dtype=bool)
    truth[rng.choice(N, N_BAD, replace=False)] = True
    scores = np.where(
        truth, rng.lognormal(math.log(5e-2), 1.0, N), rng.lognormal(math.log(1e-3), 1.3, N)
    )
    scores[[0, 1]] = 0.0  # exact zeros must survive the log axis
    given = rng.integers(0, K, N)
    is_issue = scores > THRESHOLD
    action = np.full(N, "keep", dtype=object)
    flagged = np.flatnonzero(is_issue)
    cycle = np.array(["drop", "relabel", "reweight", "keep"], dtype=object)
    action[flagged] = cycle[np.arange(flagged.size) % 4]
    suggested = given.copy()
    relabel = action == "relabel"
    suggested[relabel] = (given[relabel] + 1) % K
    weight = np.where(action == "reweight", 0.25, 1.0)
    table = pd.DataFrame({
        "row_id": np.arange(1000, 1000 + N),
        "score": scores,
        "gex_influence": 3 * scores,
        "label_quality": 1 - scores / scores.max(),
        "is_issue": is_issue,
        "action": action.astype(str),
        "given_label": given.astype(np.int64),
        "suggested_label": suggested.astype(np.int64),
        "weight": weight,
    })
    return table, truth


@pytest.fixture(scope="module")
def data():
    return _make_table()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((N, 8, 8)).astype(np.float32)


def _bias_scores(table: pd.DataFrame, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Three made-up estimators: the table's score, a noisy copy of it, and one blind to the truth."""
    rng = np.random.default_rng(4)
    s = table["score"].to_numpy()
    return {
        "GEX": s,
        "noisy <IF>": s * rng.lognormal(0.0, 2.0, s.size),
        "blind $x$": rng.lognormal(0.0, 1.0, s.size),
    }


@pytest.fixture(scope="module")
def full_html(data, images):
    table, truth = data
    return build_report(
        table, class_names=CLASS_NAMES, threshold=THRESHOLD, truth=truth, gallery=images,
        summary={"ft_lr": 0.2, "note <b>": "x < y & z", "config": {"cycles": 4, "chains": 2}},
        title="demo <i>report</i>", bias_scores=_bias_scores(table, truth),
    )


def _pngs(doc: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', doc)]


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def test_histogram_log_axis_threshold_and_truth_groups(data):
    table, truth = data
    fig = plot_score_histogram(table["score"], THRESHOLD, is_issue=table["is_issue"], truth=truth)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "threshold"]
    assert np.allclose(line.get_xdata(), THRESHOLD)
    assert "threshold = 0.01" in line.get_label()
    assert f"({int(table['is_issue'].sum())} flagged)" in line.get_label()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"truly mislabeled ({N_BAD})" in labels and f"clean ({N - N_BAD})" in labels
    # Two stacked groups: the bars of the upper group sit on the lower; together every row is drawn,
    # the two zeros included.
    clean_bars, bad_bars = ax.containers
    assert sum(p.get_height() for p in clean_bars) == N - N_BAD
    assert sum(p.get_height() for p in bad_bars) == N_BAD
    # Log-spaced bins: equal widths in log space.
    edges = np.array([p.get_x() for p in clean_bars] + [clean_bars[-1].get_x() + clean_bars[-1].get_width()])
    assert np.allclose(np.diff(np.log(edges)), np.diff(np.log(edges))[0])
    # The zeros sit below every positive score.
    assert edges[0] <= table["score"][table["score"] > 0].min() / 2 * (1 + 1e-9)
    assert "2 zero score(s)" in ax.get_xlabel()


def test_histogram_without_truth_splits_by_is_issue_or_draws_one_group(data):
    table, _ = data
    fig = plot_score_histogram(table["score"], THRESHOLD, is_issue=table["is_issue"])
    ax = fig.axes[0]
    flagged_bars = ax.containers[1]
    assert sum(p.get_height() for p in flagged_bars) == int(table["is_issue"].sum())
    single = plot_score_histogram(np.array([0.0, 1e-3, 1e-2, 1.0]), 0.0).axes[0]
    assert len(single.containers) == 1 and sum(p.get_height() for p in single.containers[0]) == 4
    # A zero threshold is drawn at the floor (half the smallest positive score), not lost.
    (line,) = [ln for ln in single.get_lines() if ln.get_gid() == "threshold"]
    assert np.allclose(line.get_xdata(), 5e-4)


def test_issues_per_class_bars_and_counts(data):
    table, _ = data
    fig = plot_issues_per_class(table, CLASS_NAMES)
    (ax,) = fig.axes
    counted = table[table["is_issue"] | (table["action"] != "keep")]
    present = [a for a in ("keep", "drop", "relabel", "reweight") if (counted["action"] == a).any()]
    assert len(ax.containers) == len(present) == 4
    for container, a in zip(ax.containers, present):
        assert len(container.patches) == K
        expected = counted[counted["action"] == a].groupby("given_label").size().reindex(range(K), fill_value=0)
        assert [p.get_height() for p in container.patches] == expected.tolist()
    # Class names as tick labels, verbatim (no mathtext), in label order.
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASS_NAMES
    fig.canvas.draw()  # "$x$" drawn literally, the script name as text: nothing raises


def test_issues_per_class_with_nothing_flagged(data):
    table, _ = data
    quiet = table.assign(is_issue=False, action="keep")
    ax = plot_issues_per_class(quiet, CLASS_NAMES).axes[0]
    assert len(ax.containers) == 1 and len(ax.containers[0].patches) == K
    assert all(p.get_height() == 0 for p in ax.containers[0].patches)


def test_gallery_images_top_k_by_score(data, images):
    table, _ = data
    fig = plot_gallery(table, images, CLASS_NAMES, k=24)
    assert isinstance(fig, Figure)
    image_axes = [ax for ax in fig.axes if len(ax.images) == 1]
    assert len(fig.axes) == len(image_axes) == 24
    top = np.argsort(-table["score"].to_numpy(), kind="stable")[:24]
    short = [n if len(n) <= 20 else n[:19] + "…" for n in CLASS_NAMES]
    assert short[3] == "<script>alert(1)</s…"
    for ax, i in zip(fig.axes, top):
        row = table.iloc[i]
        title = ax.get_title()
        assert title.startswith(f"{short[row['given_label']]} → {short[row['suggested_label']]}\n")
        assert f"score {row['score']:.3g}" in title
        assert np.array_equal(ax.images[0].get_array(), images[i])
        assert ax.images[0].get_cmap().name == "gray"
    fig.canvas.draw()


def test_gallery_rgb_channels_first_and_callable(data):
    table, _ = data
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (N, 6, 6, 3), dtype=np.uint8)
    top = np.argsort(-table["score"].to_numpy(), kind="stable")[:5]
    fig = plot_gallery(table, rgb, CLASS_NAMES, k=5)
    assert len(fig.axes) == 5
    assert np.array_equal(fig.axes[0].images[0].get_array(), rgb[top[0]])
    chw = np.moveaxis(rgb, 3, 1)  # (n, 3, 6, 6), as featurized for torch
    assert np.array_equal(plot_gallery(table, chw, CLASS_NAMES, k=5).axes[0].images[0].get_array(), rgb[top[0]])

    from PIL import Image

    calls = []

    def load(i):
        calls.append(i)
        return Image.fromarray(rgb[i])

    fig = plot_gallery(table, load, CLASS_NAMES, k=5)
    assert calls == top.tolist()  # called with row positions, highest score first
    assert np.array_equal(fig.axes[2].images[0].get_array(), rgb[top[2]])


def test_gallery_text_cells(data):
    table, _ = data
    texts = [f"review number {i} " + "word " * 100 for i in range(N)]
    fig = plot_gallery(table, texts, CLASS_NAMES, k=7)
    assert len(fig.axes) == 7 and all(len(ax.images) == 0 for ax in fig.axes)
    top = np.argsort(-table["score"].to_numpy(), kind="stable")[:7]
    for ax, i in zip(fig.axes, top):
        (text,) = ax.texts
        body = text.get_text()
        assert body.startswith(f"review number {i} ")
        assert "\n" in body and body.endswith("…")  # wrapped and cut
        assert max(len(line) for line in body.splitlines()) <= 52 and len(body.replace("\n", " ")) == 400
        assert ax.get_title().startswith(CLASS_NAMES[table["given_label"].iloc[i]] + " → ")  # 36 chars fit
    # k larger than the table: one cell per row.
    assert len(plot_gallery(table.head(3), texts[:3], CLASS_NAMES, k=24).axes) == 3


def test_precision_recall_ap_in_legend_and_operating_point(data):
    table, truth = data
    scores = table["score"].to_numpy()
    fig = plot_precision_recall(scores, truth, threshold=THRESHOLD, score_name="gex+oos+aum")
    (ax,) = fig.axes
    ap = average_precision_score(truth, scores)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"gex+oos+aum (AP = {ap:.3f})" in labels  # the ranking the run used, by its name
    unnamed = plot_precision_recall(scores, truth, threshold=THRESHOLD).axes[0]
    assert f"score (AP = {ap:.3f})" in [t.get_text() for t in unnamed.get_legend().get_texts()]
    (point,) = [ln for ln in ax.get_lines() if ln.get_gid() == "operating_point"]
    flagged = scores > THRESHOLD
    tp = int((flagged & truth).sum())
    assert np.allclose(point.get_xdata(), tp / truth.sum())
    assert np.allclose(point.get_ydata(), tp / flagged.sum())
    # Without a threshold no operating point.
    ax2 = plot_precision_recall(scores, truth).axes[0]
    assert not [ln for ln in ax2.get_lines() if ln.get_gid() == "operating_point"]


# --------------------------------------------------------------------------------------------
# HTML report
# --------------------------------------------------------------------------------------------


def test_build_report_sections_pngs_and_numbers(full_html, data):
    table, truth = data
    doc = full_html
    assert doc.startswith("<!DOCTYPE html>")
    for key, title in SECTION_TITLES.items():
        if key in ("gex_histogram", "issue_types"):  # only for a rank score / with issue types (tests below)
            continue
        assert f"<h2>{title}</h2>" in doc
    pngs = _pngs(doc)
    # Four figures (histogram, per class, precision/recall, distributional bias) and one thumbnail
    # per gallery row (24).
    assert len(pngs) == 4 + 24
    assert doc.count('<img class="thumb"') == 24
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    # Self-contained: no external resource, no script.
    assert not re.search(r"<script|<link|src=\"http|href=\"http", doc)
    # Summary numbers.
    n_drop = int((table["action"] == "drop").sum())
    assert f"<th>rows in</th><td class=\"num\">{N}</td>" in doc
    assert f"<th>rows out</th><td class=\"num\">{N - n_drop}</td>" in doc
    assert f"<th>issues flagged</th><td class=\"num\">{int(table['is_issue'].sum())}</td>" in doc
    assert f"<th>action: drop</th><td class=\"num\">{n_drop}</td>" in doc
    assert "<th>ft_lr</th><td class=\"num\">0.2</td>" in doc
    assert "&quot;cycles&quot;: 4" in doc
    # Precision / recall / F1 of is_issue at the threshold, computed by hand.
    flagged = table["is_issue"].to_numpy()
    tp = int((flagged & truth).sum())
    p, r = tp / flagged.sum(), tp / truth.sum()
    f1 = 2 * p * r / (p + r)
    assert f"<th>precision at threshold</th><td class=\"num\">{p:.4g}</td>" in doc
    assert f"<th>recall at threshold</th><td class=\"num\">{r:.4g}</td>" in doc
    assert f"<th>F1 at threshold</th><td class=\"num\">{f1:.4g}</td>" in doc


def test_build_report_escapes_user_strings(full_html):
    doc = full_html
    assert EVIL not in doc and "<script" not in doc
    assert html_escaped(EVIL) in doc
    assert "<title>demo &lt;i&gt;report&lt;/i&gt;</title>" in doc
    assert "<th>note &lt;b&gt;</th><td>x &lt; y &amp; z</td>" in doc


def html_escaped(s: str) -> str:
    import html

    return html.escape(s)


def test_build_report_top_rows_table(full_html, data):
    table, _ = data
    section = full_html.split('<section id="top_rows">')[1].split("</section>")[0]
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>(\d+)</td>", section)
    assert len(rows) == TOP_ROWS
    top = np.argsort(-table["score"].to_numpy(), kind="stable")[:TOP_ROWS]
    assert [int(rid) for _, rid in rows] == table["row_id"].to_numpy()[top].tolist()
    assert [int(rank) for rank, _ in rows] == list(range(1, TOP_ROWS + 1))


def test_build_report_without_truth_or_gallery(data):
    table, _ = data
    doc = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD)
    assert SECTION_TITLES["precision_recall"] not in doc and "precision at threshold" not in doc
    assert SECTION_TITLES["gallery"] not in doc
    assert len(_pngs(doc)) == 2
    assert SECTION_TITLES["top_rows"] in doc and SECTION_TITLES["summary"] in doc
    assert SECTION_TITLES["confusion"] in doc and SECTION_TITLES["bias"] not in doc


def _summary_keys(doc: str) -> list[str]:
    section = doc.split('<section id="summary">')[1].split("</section>")[0]
    return re.findall(r"<tr><th>(.*?)</th>", section)


def test_build_report_summary_shows_each_count_once(data, caplog):
    """The flow's summary repeats counts the report computes itself; each must be listed once."""
    table, truth = data
    counts = table["action"].value_counts()
    n_flagged = int(table["is_issue"].sum())
    flow_summary = {  # what flows/clean_dataset.py passes
        "rows in": N, "rows out": N - int(counts["drop"]), "flagged": n_flagged,
        **{f"action {a}": int(counts[a]) for a in sorted(counts.index)},
        "ft_lr": 0.2, "score": "gex+oos+aum", "threshold method": "estimate", "threshold": THRESHOLD,
        "members": 8, "estimated noise rate": 0.09,
    }
    doc = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, truth=truth, summary=flow_summary)
    keys = _summary_keys(doc)
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    reduced = [" ".join(re.sub(r"[_:\-]", " ", k.lower()).split()) for k in keys]
    assert len(reduced) == len(set(reduced))
    assert sum(k in ("flagged", "issues flagged") for k in reduced) == 1
    for a in ("keep", "drop", "relabel", "reweight"):
        assert reduced.count(f"action {a}") == 1
    for key in ("ft_lr", "score", "threshold method", "members", "estimated noise rate"):
        assert keys.count(key) == 1
    assert "<th>score</th><td>gex+oos+aum</td>" in doc
    assert f"<th>issues flagged</th><td class=\"num\">{n_flagged}</td>" in doc
    assert "<th>true noise rate (ground truth)</th><td class=\"num\">0.1</td>" in doc
    assert "differs" not in caplog.text  # the flow's values agree with the table

    # A disagreeing entry is still not shown twice: the table's count wins, with a warning.
    doc = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, summary={"Rows_In": 7})
    assert _summary_keys(doc).count("rows in") == 1 and "Rows_In" not in _summary_keys(doc)
    assert f"<th>rows in</th><td class=\"num\">{N}</td>" in doc
    assert "'Rows_In' = 7 differs" in caplog.text


def _pairs_table_and_counts():
    """Eight rows, three classes; six flagged, in pairs (0→1) ×3, (2→0) ×2, (1→1) ×1."""
    given = [0, 0, 0, 2, 2, 1, 0, 1]
    suggested = [1, 1, 1, 0, 0, 1, 1, 2]
    is_issue = [True, True, True, True, True, True, False, False]
    action = ["relabel", "relabel", "drop", "relabel", "keep", "keep", "keep", "keep"]
    table = pd.DataFrame({
        "row_id": np.arange(8), "score": np.linspace(1.0, 0.1, 8), "gex_influence": np.linspace(1.0, 0.1, 8),
        "label_quality": np.linspace(0.0, 0.9, 8), "is_issue": is_issue, "action": action,
        "given_label": given, "suggested_label": suggested, "weight": 1.0,
    })
    # by hand: (given, suggested) -> (flagged rows, relabeled), most frequent first
    expected = [(("cat", "dog"), (3, 2)), (("bird", "cat"), (2, 1)), (("dog", "dog"), (1, 0))]
    return table, ["cat", "dog", "bird"], expected


def test_flagged_pairs_in_report_and_markdown():
    table, names, expected = _pairs_table_and_counts()
    doc = build_report(table, class_names=names, threshold=0.3)
    section = doc.split('<section id="confusion">')[1].split("</section>")[0]
    rows = re.findall(r'<tr><td>(\w+)</td><td>(\w+)</td><td class="num">(\d+)</td><td class="num">([\d.]+)%</td>'
                      r'<td class="num">(\d+)</td></tr>', section)
    assert [((g, s), (int(n), int(r))) for g, s, n, _, r in rows] == expected
    assert [float(share) for *_, share, _ in rows] == [50.0, pytest.approx(33.3), pytest.approx(16.7)]
    assert "6 flagged rows in 3 (given, suggested) pairs" in section

    md = summary_markdown(table, names, 0.3)
    assert "| flagged: given → suggested | rows |" in md
    pair_rows = re.findall(r"^\| (\w+) → (\w+) \| (\d+) \|$", md, flags=re.M)
    assert [((g, s), int(n)) for g, s, n in pair_rows] == [(pair, n) for pair, (n, _) in expected]

    # Nothing flagged: a note in the report, no pair table in the markdown.
    quiet = table.assign(is_issue=False, action="keep")
    assert "No row was flagged." in build_report(quiet, class_names=names, threshold=0.3)
    assert "given → suggested |" not in summary_markdown(quiet, names, 0.3)


def test_flagged_pairs_are_capped_to_the_most_frequent():
    k = 30
    rng = np.random.default_rng(5)
    given = np.repeat(np.arange(k), 3)
    suggested = (given + 1) % k
    suggested[:3] = 7  # class 0 → class 7: three rows, the most frequent pair
    given[3:6], suggested[3:6] = 0, 7  # class 1's rows join it: six rows
    n = given.size
    table = pd.DataFrame({
        "row_id": np.arange(n), "score": rng.random(n), "gex_influence": rng.random(n), "label_quality": 0.5,
        "is_issue": True, "action": "keep", "given_label": given, "suggested_label": suggested, "weight": 1.0,
    })
    names = [f"c{i}" for i in range(k)]
    md = summary_markdown(table, names, 0.0)
    pair_rows = re.findall(r"^\| (c\d+) → (c\d+) \| (\d+) \|$", md, flags=re.M)
    assert len(pair_rows) == MARKDOWN_MAX_PAIRS and pair_rows[0] == ("c0", "c7", "6")
    n_pairs = 1 + (k - 2)
    shown = 6 + 3 * (MARKDOWN_MAX_PAIRS - 1)
    assert f"{n_pairs - MARKDOWN_MAX_PAIRS} more pairs not shown ({n - shown} flagged rows)" in md
    section = build_report(table, class_names=names, threshold=0.0).split('<section id="confusion">')[1]
    assert section.split("</section>")[0].count("<tr><td>") == min(n_pairs, REPORT_MAX_PAIRS)


def test_write_report(tmp_path, data):
    table, _ = data
    doc = build_report(table.head(40), class_names=CLASS_NAMES, threshold=THRESHOLD, title="tiny é")
    out = write_report(tmp_path / "sub" / "report.html", doc)
    assert out == (tmp_path / "sub" / "report.html").resolve()
    assert out.read_text(encoding="utf-8") == doc
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_build_report_bias_section_only_with_truth_and_scores(data, full_html, caplog):
    caplog.set_level(logging.INFO, logger="influence_stage.report.html")
    table, truth = data
    assert '<section id="bias">' in full_html
    assert "&lt;IF&gt;" not in full_html  # method names are drawn in the PNG only
    bias = _bias_scores(table, truth)
    no_truth = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, bias_scores=bias)
    assert SECTION_TITLES["bias"] not in no_truth and len(_pngs(no_truth)) == 2
    assert "needs ground truth" in caplog.text
    no_scores = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, truth=truth)
    assert SECTION_TITLES["bias"] not in no_scores and len(_pngs(no_scores)) == 3
    with pytest.raises(InvalidInputError, match=r"scores\['GEX'\] has 499 entries but truth has 500"):
        build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, truth=truth,
                     bias_scores={"GEX": table["score"].to_numpy()[:-1]})
    with pytest.raises(InvalidTypeError, match="bias_scores must be a mapping"):
        build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, truth=truth, bias_scores=[1.0] * N)


# --------------------------------------------------------------------------------------------
# Distributional bias figure
# --------------------------------------------------------------------------------------------


def test_distributional_bias_panels_titles_and_groups(data):
    table, truth = data
    scores = _bias_scores(table, truth)
    fig = plot_distributional_bias(scores, truth)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(scores) == 3
    for ax, (name, s) in zip(fig.axes, scores.items()):  # the mapping's order
        auroc, ap = roc_auc_score(truth, s), average_precision_score(truth, s)
        assert ax.get_title() == f"{name}: AUROC {auroc:.3f} · AP {ap:.3f}"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == [f"clean ({N - N_BAD})", f"truly mislabeled ({N_BAD})"]
    # The titles tell a separating estimator from a blind one.
    assert roc_auc_score(truth, scores["GEX"]) > 0.9 > 0.6 > roc_auc_score(truth, scores["blind $x$"])
    # log10 axis with the zeros floored at the 1st percentile of the positive scores.
    s = scores["GEX"]
    floor = np.percentile(s[s > 0], 1)
    assert f"{int((s < floor).sum())} rows floored at the 1st percentile" in fig.axes[0].get_xlabel()
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= np.log10(floor) and hi >= np.log10(s.max())
    fig.canvas.draw()  # "$x$" and "<IF>" drawn literally

    # More panels wrap into rows; one method gives one axes; a pandas Series is accepted as truth.
    many = {f"m{i}": s + i for i in range(5)}
    assert [ax.get_title().split(":")[0] for ax in plot_distributional_bias(many, truth).axes] == list(many)
    assert len(plot_distributional_bias({"GEX": s}, pd.Series(truth)).axes) == 1


def test_distributional_bias_errors(data):
    table, truth = data
    s = table["score"].to_numpy()
    with pytest.raises(InvalidInputError, match=r"scores is empty \(no method\)"):
        plot_distributional_bias({}, truth)
    with pytest.raises(InvalidTypeError, match="scores must be a mapping"):
        plot_distributional_bias(s, truth)
    with pytest.raises(InvalidInputError, match=r"scores\['b'\] has 499 entries but truth has 500"):
        plot_distributional_bias({"a": s, "b": s[:-1]}, truth)
    with pytest.raises(InvalidInputError, match=r"scores\['a'\] must be finite; row 3 has nan"):
        plot_distributional_bias({"a": np.where(np.arange(N) == 3, np.nan, s)}, truth)
    with pytest.raises(InvalidInputError, match=r"scores\['a'\] must be finite; row 0 has inf"):
        plot_distributional_bias({"a": np.r_[np.inf, s[1:]]}, truth)
    with pytest.raises(InvalidInputError, match=r"scores\['a'\] must be >= 0.*row 2 has -0.5"):
        plot_distributional_bias({"a": np.r_[s[:2], -0.5, s[3:]]}, truth)
    with pytest.raises(InvalidInputError, match="truth marks no row as mislabeled"):
        plot_distributional_bias({"a": s}, np.zeros(N, dtype=bool))
    with pytest.raises(InvalidInputError, match="truth marks every row as mislabeled"):
        plot_distributional_bias({"a": s}, np.ones(N, dtype=bool))
    with pytest.raises(InvalidTypeError, match="truth must be boolean"):
        plot_distributional_bias({"a": s}, np.full(N, 0.5))
    with pytest.raises(InvalidTypeError, match=r"scores\['a'\] must be numeric"):
        plot_distributional_bias({"a": ["x"] * N}, truth)


# --------------------------------------------------------------------------------------------
# Markdown summary
# --------------------------------------------------------------------------------------------


def test_summary_markdown_numbers(data):
    table, truth = data
    md = summary_markdown(table, CLASS_NAMES, THRESHOLD, truth=truth, timings={"score": 1.234, "fit | θ*": 0.5})
    counts = table["action"].value_counts()
    for a in ("keep", "drop", "relabel", "reweight"):
        assert f"| {a} | {counts[a]} |" in md
    n_flagged = int(table["is_issue"].sum())
    assert f"**{N}** rows in, **{N - counts['drop']}** rows out; **{n_flagged}** flagged" in md
    assert "threshold **0.01**" in md
    # Per class: class 7 by hand.
    c7 = table[table["given_label"] == 7]
    row = (
        f"| class 7 | {len(c7)} | {int(c7['is_issue'].sum())} | {int((c7['action'] == 'drop').sum())} | "
        f"{int((c7['action'] == 'relabel').sum())} | {int((c7['action'] == 'reweight').sum())} |"
    )
    assert row in md
    # Precision and recall of is_issue against the truth, by hand.
    flagged = table["is_issue"].to_numpy()
    tp = int(np.sum(flagged & truth))
    assert f"precision **{tp / flagged.sum():.3f}**" in md
    assert f"recall **{tp / truth.sum():.3f}**" in md
    assert f"({tp} of {n_flagged} flagged rows are truly mislabeled)" in md
    # Escaping: no raw HTML, the pipe does not split a table cell.
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "| a\\|b $x$ |" in md
    assert "| score | 1.23 |" in md and "| fit \\| θ\\* | 0.50 |" in md


def test_summary_markdown_without_truth_and_nothing_flagged(data):
    table, truth = data
    md = summary_markdown(table, CLASS_NAMES, THRESHOLD)
    assert "ground truth" not in md and "| step |" not in md
    quiet = table.assign(is_issue=False, action="keep")
    md = summary_markdown(quiet, CLASS_NAMES, THRESHOLD, truth=truth)
    assert "precision **n/a**" in md and "recall **0.000**" in md


def test_summary_markdown_score_method_and_noise_rates(data):
    table, truth = data
    md = summary_markdown(table, CLASS_NAMES, THRESHOLD, truth=truth, score_name="gex+oos+aum",
                          threshold_method="estimate", n_estimated=45)
    assert ("Score **gex+oos+aum**; threshold method **estimate**; estimated noise rate **9.0%** (45 rows), "
            f"true noise rate **{100 * N_BAD / N:.1f}%** ({N_BAD} rows).") in md
    # Without truth no true rate; without an estimate no rates at all; nothing given: no line.
    md = summary_markdown(table, CLASS_NAMES, THRESHOLD, score_name="gex", n_estimated=0)
    assert "Score **gex**; estimated noise rate **0.0%** (0 rows)." in md and "true noise rate" not in md
    md = summary_markdown(table, CLASS_NAMES, THRESHOLD, truth=truth, threshold_method="otsu")
    assert "Threshold method **otsu**." in md and "noise rate" not in md
    assert "Score **" not in summary_markdown(table, CLASS_NAMES, THRESHOLD, truth=truth)
    assert "**my\\_score**" in summary_markdown(table, CLASS_NAMES, THRESHOLD, score_name="my_score")
    with pytest.raises(InvalidInputError, match=r"n_estimated must be in 0\.\.500"):
        summary_markdown(table, CLASS_NAMES, THRESHOLD, n_estimated=501)
    with pytest.raises(InvalidTypeError, match="n_estimated must be an integer"):
        summary_markdown(table, CLASS_NAMES, THRESHOLD, n_estimated=0.09)
    with pytest.raises(InvalidTypeError, match="score_name must be a string"):
        summary_markdown(table, CLASS_NAMES, THRESHOLD, score_name=3)


def test_summary_markdown_many_classes_are_capped():
    rng = np.random.default_rng(3)
    n, k = 300, 30
    given = rng.integers(0, k, n)
    is_issue = given == 29  # only the last class is flagged: it must be listed first
    table = pd.DataFrame({
        "row_id": np.arange(n), "score": rng.random(n), "gex_influence": rng.random(n), "label_quality": 0.5,
        "is_issue": is_issue, "action": np.where(is_issue, "drop", "keep"), "given_label": given, "suggested_label": given,
        "weight": 1.0,
    })
    md = summary_markdown(table, [f"c{i}" for i in range(k)], 0.5)
    class_rows = [ln for ln in md.splitlines() if re.match(r"\| c\d+ \|", ln)]
    assert len(class_rows) == 20 and class_rows[0].startswith("| c29 |")
    assert "10 more classes not shown" in md


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_missing_column_is_named(data):
    table, _ = data
    with pytest.raises(InvalidInputError, match=r"missing column\(s\) \['suggested_label', 'weight'\]"):
        build_report(table.drop(columns=["weight", "suggested_label"]), class_names=CLASS_NAMES, threshold=THRESHOLD)
    with pytest.raises(InvalidInputError, match="missing column"):
        summary_markdown(table.drop(columns=["score"]), CLASS_NAMES, THRESHOLD)
    with pytest.raises(InvalidInputError, match="missing column"):
        plot_issues_per_class(table.drop(columns=["action"]), CLASS_NAMES)


def test_truth_length_mismatch(data):
    table, truth = data
    with pytest.raises(InvalidInputError, match=r"truth must have one entry per row.*expected 500, found 499"):
        build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, truth=truth[:-1])
    with pytest.raises(InvalidInputError, match="expected 500, found 499"):
        summary_markdown(table, CLASS_NAMES, THRESHOLD, truth=truth[:-1])
    with pytest.raises(InvalidInputError, match="expected 500, found 501"):
        plot_score_histogram(table["score"], THRESHOLD, truth=np.append(truth, True))


def test_empty_table(data):
    table, _ = data
    with pytest.raises(InvalidInputError, match=r"table is empty \(0 rows\)"):
        build_report(table.iloc[:0], class_names=CLASS_NAMES, threshold=THRESHOLD)
    with pytest.raises(InvalidInputError, match="table is empty"):
        summary_markdown(table.iloc[:0], CLASS_NAMES, THRESHOLD)
    with pytest.raises(InvalidInputError, match="scores is empty"):
        plot_score_histogram([], THRESHOLD)


def test_other_bad_inputs(data, images):
    table, truth = data
    with pytest.raises(InvalidInputError, match=r"'action' must hold only .* found \['delete'\] \(first at row 3\)"):
        plot_issues_per_class(table.assign(action=["keep"] * 3 + ["delete"] * (N - 3)), CLASS_NAMES)
    with pytest.raises(InvalidInputError, match=r"'given_label' must hold class codes 0\.\.8 .* row \d+ has 9"):
        summary_markdown(table, CLASS_NAMES[:9], THRESHOLD)
    with pytest.raises(InvalidInputError, match=r"'score' must be finite and >= 0.*row 4"):
        summary_markdown(table.assign(score=np.r_[np.ones(4), -1.0, np.ones(N - 5)]), CLASS_NAMES, THRESHOLD)
    with pytest.raises(InvalidInputError, match="threshold must be finite and >= 0"):
        build_report(table, class_names=CLASS_NAMES, threshold=-1.0)
    with pytest.raises(InvalidTypeError, match="threshold must be a number"):
        build_report(table, class_names=CLASS_NAMES, threshold="otsu")
    with pytest.raises(InvalidInputError, match="one image per row.*expected 500, found 499"):
        build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, gallery=images[:-1])
    with pytest.raises(InvalidInputError, match="one text per row"):
        plot_gallery(table, ["x"] * 3, CLASS_NAMES)
    with pytest.raises(InvalidInputError, match="truth marks no row as mislabeled"):
        plot_precision_recall(table["score"], np.zeros(N, dtype=bool))
    with pytest.raises(InvalidTypeError, match="must be a pandas DataFrame"):
        build_report(table.to_dict(), class_names=CLASS_NAMES, threshold=THRESHOLD)
    with pytest.raises(InvalidTypeError, match="class_names must be a list of strings"):
        plot_issues_per_class(table, "abc")
    # Errors are ValueErrors / TypeErrors too.
    with pytest.raises(ValueError):
        summary_markdown(table.iloc[:0], CLASS_NAMES, THRESHOLD)


def test_rank_score_histogram_is_linear_and_the_gex_scores_get_their_own(data):
    table, truth = data
    rank = table.copy()
    rank["score"] = (np.argsort(np.argsort(table["score"].to_numpy())) + 1) / len(table)
    fig = plot_score_histogram(rank["score"], 0.9, is_issue=rank["score"] > 0.9, score_name="gex+oos+aum")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and "gex+oos+aum" in ax.get_title()
    assert plot_score_histogram(table["score"], THRESHOLD).axes[0].get_xscale() == "log"
    html = build_report(rank, class_names=CLASS_NAMES, threshold=0.9, score_name="gex+oos+aum")
    assert SECTION_TITLES["gex_histogram"] in html and "mean of percentile ranks" in html
    assert "evidence first" not in html
    # under evidence first (engine.scores.evidence_first) the note says how the published score was built
    first = build_report(rank, class_names=CLASS_NAMES, threshold=0.9, score_name="gex+oos+aum",
                         summary={"evidence first": True})
    assert "evidence first: rows that favour their own label lie in (0, 0.5]" in first
    assert SECTION_TITLES["gex_histogram"] not in build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD)


# --------------------------------------------------------------------------------------------
# Issue types
# --------------------------------------------------------------------------------------------

ISSUE_TYPES = {"outlier": 12, "exact_duplicate": 3, "null": 0}


def _harm(table: pd.DataFrame) -> pd.DataFrame:
    """Harm of every row; ranks 1.. over the flagged rows, most harmful first (rank_by_harm's layout)."""
    harm = np.linspace(-1.0, 1.0, len(table))[::-1].copy()  # row 0 the most harmful
    flagged = np.flatnonzero(table["is_issue"].to_numpy())
    rank = np.zeros(len(table), dtype=np.int64)
    rank[flagged[np.argsort(-harm[flagged], kind="stable")]] = np.arange(1, flagged.size + 1)
    return pd.DataFrame({"harm": harm, "harm_rank": rank})


def test_issue_types_section_from_the_summary_with_counts_and_shares(data):
    table, _ = data
    doc = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD,
                       summary={"issue types": ISSUE_TYPES, "exact duplicates dropped": 3})
    assert f"<h2>{SECTION_TITLES['issue_types']}</h2>" in doc
    section = doc.split('<section id="issue_types">')[1].split("</section>")[0]
    assert '<td>outlier</td><td class="num">12</td><td class="num">2.4%</td>' in section
    assert '<td>exact_duplicate</td><td class="num">3</td><td class="num">0.6%</td>' in section
    assert '<td>null</td><td class="num">0</td><td class="num">0.0%</td>' in section
    assert "Exact duplicates dropped (every copy after the first): 3." in section
    assert "harm rank" not in section  # no harm given
    summary_table = doc.split('<section id="summary">')[1].split("</section>")[0]
    assert "issue types" not in summary_table and "<th>exact duplicates dropped</th><td class=\"num\">3</td>" in summary_table
    # the section sits before the top rows
    assert doc.index('<section id="issue_types">') < doc.index('<section id="top_rows">')
    # no issue types (no entry, or an empty one): no section
    for summary in (None, {"issue types": {}}):
        plain = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, summary=summary)
        assert SECTION_TITLES["issue_types"] not in plain


def test_issue_types_section_ranks_flagged_rows_by_harm_with_the_measured_caveat(data):
    table, _ = data
    harm = _harm(table)
    doc = build_report(table, class_names=CLASS_NAMES, threshold=THRESHOLD, issue_types={"outlier": 5},
                       harm=harm, summary={"issue types": {"ignored": 1}})
    section = doc.split('<section id="issue_types">')[1].split("</section>")[0]
    assert "<td>outlier</td>" in section and "ignored" not in section  # the argument wins over the summary
    flagged = np.flatnonzero(table["is_issue"].to_numpy())
    assert f"Top {min(TOP_ROWS, flagged.size)} flagged rows by harm rank" in section
    ranked = re.findall(r'<tr><td class="num">(\d+)</td><td>(\d+)</td>', section)
    assert len(ranked) == min(TOP_ROWS, flagged.size)
    assert [int(r) for r, _ in ranked] == list(range(1, len(ranked) + 1))
    # harm decreases with the row position, so rank 1 is the first flagged row
    assert [int(row_id) for _, row_id in ranked] == [1000 + int(i) for i in flagged[:len(ranked)]]
    assert "never helped a retrained model more than dropping the same number" in section
    assert "Harm ranking downstream" in section


def test_issue_types_and_harm_errors(data):
    table, _ = data
    kw = dict(class_names=CLASS_NAMES, threshold=THRESHOLD)
    with pytest.raises(InvalidTypeError, match="issue type to rows flagged"):
        build_report(table, issue_types=[("outlier", 3)], **kw)
    with pytest.raises(InvalidTypeError, match="issue type to rows flagged"):
        build_report(table, summary={"issue types": "outlier"}, **kw)
    with pytest.raises(InvalidInputError, match="'outlier' must count rows flagged as an int >= 0; found -1"):
        build_report(table, issue_types={"outlier": -1}, **kw)
    with pytest.raises(InvalidTypeError, match="harm must be a DataFrame"):
        build_report(table, issue_types=ISSUE_TYPES, harm=np.zeros(N), **kw)
    with pytest.raises(InvalidInputError, match=f"one row per table row \\({N}\\); found .* and 3 rows"):
        build_report(table, issue_types=ISSUE_TYPES, harm=_harm(table).head(3), **kw)


def test_report_links_only_to_its_own_anchors_and_embedded_images(full_html):
    ids = set(re.findall(r'\bid="([^"]+)"', full_html))
    links = re.findall(r"""\b(href|src)=["']([^"']*)["']""", full_html)
    assert len(links) >= 28
    for attr, target in links:
        if attr == "src":
            assert target.startswith("data:image/png;base64,"), target
        else:
            assert target.startswith("#") and target[1:] in ids, target
