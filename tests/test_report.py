"""Tests of influence_stage.report: figures, the HTML report, the markdown summary, input errors."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score

from influence_stage.exceptions import InvalidInputError, InvalidTypeError
from influence_stage.report import (
    SECTION_TITLES,
    TOP_ROWS,
    build_report,
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


@pytest.fixture(scope="module")
def full_html(data, images):
    table, truth = data
    return build_report(
        table, class_names=CLASS_NAMES, threshold=THRESHOLD, truth=truth, gallery=images,
        summary={"ft_lr": 0.2, "note <b>": "x < y & z", "config": {"cycles": 4, "chains": 2}},
        title="demo <i>report</i>",
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
    fig = plot_precision_recall(scores, truth, threshold=THRESHOLD)
    (ax,) = fig.axes
    ap = average_precision_score(truth, scores)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"GEX (AP = {ap:.3f})" in labels
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
    for title in SECTION_TITLES.values():
        assert f"<h2>{title}</h2>" in doc
    pngs = _pngs(doc)
    assert len(pngs) == 4  # histogram, per class, gallery, precision/recall
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


def test_write_report(tmp_path, data):
    table, _ = data
    doc = build_report(table.head(40), class_names=CLASS_NAMES, threshold=THRESHOLD, title="tiny é")
    out = write_report(tmp_path / "sub" / "report.html", doc)
    assert out == (tmp_path / "sub" / "report.html").resolve()
    assert out.read_text(encoding="utf-8") == doc
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left


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
