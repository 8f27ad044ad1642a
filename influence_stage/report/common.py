"""What the report's figures, page and summary share: sizes, section titles, colours, input checks, small helpers."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from influence_stage._checks import check_mask
from influence_stage.decisions.schema import ROW_ACTIONS
from influence_stage.errors import InvalidInputError, InvalidTypeError



#: Rows listed in the report's table of most suspicious rows.
TOP_ROWS = 50


#: Default number of cells of the gallery.
GALLERY_K = 24


#: Classes listed one by one in ``summary_markdown``; beyond this, the classes with most flagged rows.
MARKDOWN_MAX_CLASSES = 20


#: ``(given, suggested)`` pairs of flagged rows listed in ``summary_markdown``, the most frequent.
MARKDOWN_MAX_PAIRS = 10


#: ``(given, suggested)`` pairs of flagged rows listed in the HTML report, the most frequent.
REPORT_MAX_PAIRS = 50


#: Characters of a text shown in one gallery cell; longer texts are cut with an ellipsis.
GALLERY_TEXT_CHARS = 400


#: Characters of a class name in a gallery cell title (image cells, text cells); longer names are cut.
GALLERY_NAME_CHARS = (20, 36)


#: Resolution of the PNGs embedded in the report.
PNG_DPI = 100


#: Section titles of the HTML report, in order (``precision_recall`` only with ground truth,
#: ``gallery`` only with a gallery source, ``bias`` only with ground truth and bias scores,
#: ``gex_histogram`` only when the run ranks by a rank score).
SECTION_TITLES: dict[str, str] = {
    "summary": "Summary",
    "histogram": "Score distribution",
    "gex_histogram": "GEX self-influence distribution",
    "per_class": "Issues per class",
    "confusion": "Flagged rows: given → suggested label",
    "gallery": "Most suspicious rows",
    "precision_recall": "Precision / recall vs ground truth",
    "bias": "Distributional bias: clean vs mislabeled self-influence",
    "issue_types": "Issue types",
    "top_rows": f"Top {TOP_ROWS} rows by score",
}


ACTION_COLORS = {"keep": "#9e9e9e", "drop": "#d62728", "relabel": "#1f77b4", "reweight": "#ff7f0e"}


CLEAN_COLOR = "#4c72b0"


ISSUE_COLOR = "#dd8452"


def check_threshold(threshold: Any) -> float:
    """Return the threshold as a finite float ``>= 0``."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise InvalidTypeError(
            f"threshold must be a number (the score cut-off, e.g. Decisions.threshold.value); "
            f"found {type(threshold).__name__}."
        )
    t = float(threshold)
    if not math.isfinite(t) or t < 0:
        raise InvalidInputError(f"threshold must be finite and >= 0; found {threshold!r}.")
    return t


def check_truth(truth: Any, n: int) -> np.ndarray:
    """Ground-truth mask of truly mislabeled rows, ``(n,) bool``, with at least one positive row."""
    t = check_mask(truth, n, "truth")
    if not t.any():
        raise InvalidInputError(
            "truth marks no row as mislabeled; precision and recall need at least one positive row. "
            "Pass truth=None when there is no ground truth."
        )
    return t


def new_figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas: no pyplot state, no backend switch."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def log_floor(scores: np.ndarray) -> float:
    """Value that stands in for zero scores on a log axis: half the smallest positive score.

    Zeros then sit in the lowest bin, just below every positive score, instead of disappearing
    from the axis; positive scores are drawn as they are. 1.0 when no score is positive.
    """
    pos = scores[scores > 0]
    return float(pos.min()) / 2.0 if pos.size else 1.0


def precision_recall_at(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of a flagged set; NaN where undefined (nothing flagged)."""
    tp = int((flagged & truth).sum())
    n_flagged = int(flagged.sum())
    n_true = int(truth.sum())
    recall = tp / n_true if n_true else float("nan")
    if n_flagged == 0:
        return float("nan"), recall, float("nan")
    precision = tp / n_flagged
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return precision, recall, f1


def fmt_num(x: float) -> str:
    """A short number for tables: ``n/a`` for NaN, 4 significant digits otherwise."""
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:.4g}"


def action_counts(table: pd.DataFrame) -> dict[str, int]:
    action = table["action"].to_numpy()
    return {a: int((action == a).sum()) for a in ROW_ACTIONS}


def shorten(text: str, n_chars: int) -> str:
    """``text`` cut to ``n_chars`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= n_chars else text[: n_chars - 1] + "…"


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, highest first; ties keep row order."""
    return np.argsort(-scores, kind="stable")[: min(k, scores.size)]


#: How the reports show an empty suggestion: a flagged row with no confident other label
#: (``influence_stage.decisions.suggest``).
NO_SUGGESTION_TEXT = "(none)"


def suggested_name(names: Any, code: Any) -> str:
    """``names[code]``, or ``NO_SUGGESTION_TEXT`` when the suggestion ``code`` is empty (null)."""
    return NO_SUGGESTION_TEXT if pd.isna(code) else str(names[int(code)])


def flagged_pairs(t: pd.DataFrame) -> pd.DataFrame:
    """Flagged rows counted per ``(given_label, suggested_label)`` pair.

    Columns ``given_label, suggested_label, rows, relabeled`` (``relabeled``: of those rows, the ones
    whose action is ``relabel``), one row per pair that occurs, most frequent first; ties in order of
    given then suggested label, an empty suggestion (null: no confident other label) last. Empty when
    nothing is flagged.
    """
    flagged = t[t["is_issue"].to_numpy()]
    pairs = (
        flagged.assign(relabeled=(flagged["action"] == "relabel").astype(np.int64), rows=1)
        .groupby(["given_label", "suggested_label"], sort=True, dropna=False)[["rows", "relabeled"]].sum()
        .reset_index()
    )
    return pairs.sort_values("rows", ascending=False, kind="stable").reset_index(drop=True)


#: Feature columns named one by one in ``roles_line``; beyond this, the first and the last.
ROLES_MAX_NAMES = 3


_ROLE_WORDS = {"tabular": "numeric feature", "image": "image column", "text": "text column"}


def roles_line(roles: Any) -> str | None:
    """The column roles of a run in one line, e.g. ``"label: label · 64 numeric features: px_0 … px_63"``.

    Parameters
    ----------
    roles : mapping
        The summary's ``columns`` entry (``stage.summary.column_roles``): ``{"label": name, "kind":
        "tabular" | "text" | "image", "features": [names]}``.

    Returns
    -------
    str or None
        The label column, then the number of feature columns with their kind and names: all of them
        up to ``ROLES_MAX_NAMES``, else the first and the last joined by "…". None when
        ``roles`` is not such a mapping (the report then shows it as it is).
    """
    if not isinstance(roles, dict) or not isinstance(roles.get("features"), (list, tuple)):
        return None
    features = [str(f) for f in roles["features"]]
    n = len(features)
    word = _ROLE_WORDS.get(str(roles.get("kind")), "feature column")
    listed = ", ".join(features) if n <= ROLES_MAX_NAMES else f"{features[0]} … {features[-1]}"
    parts = [f"label: {roles['label']}"] if roles.get("label") is not None else []
    parts.append(f"{n} {word}{'' if n == 1 else 's'}" + (f": {listed}" if n else ""))
    return " · ".join(parts)


def file_mode() -> int:
    """The mode a new file gets from the process's umask: ``0o666 & ~umask``.

    Read from ``/proc/self/status`` where it exists (no change of process state); elsewhere by
    setting and restoring the umask.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
