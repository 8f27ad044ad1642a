"""Views of a fitted estimator for a notebook: the issues table filtered, per-class counts, the HTML report.

``IssueViews`` holds the methods both estimators share; they read only fitted attributes
(``issues_``, ``decisions_``, ``classes_``, ``threshold_``, ``score_name_``, ``members_``, ``ft_lr_``,
``estimated_noise_rate_``, ``oos_proba_``), so they work after ``fit``, after ``load``, and after a
fit whose output gate refused the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from influence_stage.decisions import ROW_ACTIONS
from influence_stage.decisions.estimate import class_noise_share
from influence_stage.errors import InvalidInputError


def preview(values: Any, limit: int = 5) -> str:
    values = list(values)
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return "[" + ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit]) + more + "]"


class IssueViews:
    """``get_issues``, ``issue_summary`` and ``report`` over an estimator's fitted attributes."""

    def get_issues(self, kind: str | None = None, *, label: Any = None, action: str | None = None) -> pd.DataFrame:
        """A filtered view of ``issues_`` (a copy).

        Parameters
        ----------
        kind : None, "all", "issues" or an issue type name, default None
            None or "all": every row, in input order. "issues" or "label": the rows flagged as label
            issues (``is_issue``), sorted by ``score`` descending (ties by input order). Another name of
            the issue-type registry (``influence_stage.decisions.issues.ISSUE_REGISTRY``: ``outlier``,
            ``near_duplicate``, ``exact_duplicate``, ``null``, ...): the rows flagged as that type
            (``is_<kind>_issue``), sorted by ``<kind>_score`` descending; the fit must have run it
            (see ``issue_type_summary``).
        label : class name, optional
            Only rows whose given label is this class (a name of ``classes_``).
        action : {"keep", "drop", "relabel", "reweight"}, optional
            Only rows with this action.

        Returns
        -------
        pandas.DataFrame
            The columns of ``issues_``; the index is the row's position in the input.

        Raises
        ------
        InvalidInputError
            An unknown kind (the message lists the registry's names), a type the fit did not run, an
            unknown class or action (the message lists the valid ones).
        """
        from influence_stage.api.issue_data import issue_types_of
        from influence_stage.decisions.issues import ISSUE_REGISTRY
        from influence_stage.stage.issues import ISSUE_MAX_ROWS

        check_is_fitted(self, "issues_")
        flag_col = score_col = None
        if kind in ("issues", "label"):
            flag_col, score_col = "is_issue", "score"
        elif kind not in (None, "all"):
            names = ISSUE_REGISTRY.names()
            if kind not in names:
                raise InvalidInputError(f"kind must be None, 'all', 'issues' or an issue type, one of {list(names)}; "
                                        f"found {kind!r}.")
            flag_col, score_col = f"is_{kind}_issue", f"{kind}_score"
            if flag_col not in self.issues_:
                raise InvalidInputError(f"issue type {kind!r} was not run in this fit; its types: "
                                        f"{issue_types_of(self.issues_)}. Fix: name it in issue_types (the default "
                                        f"skips the kNN types above {ISSUE_MAX_ROWS} rows).")
        view = self.issues_
        if label is not None:
            names = [str(c) for c in self.classes_]
            if str(label) not in names:
                raise InvalidInputError(f"label {label!r} is not a class; classes: {preview(names, 20)}.")
            view = view[view["given_label_name"] == str(label)]
        if action is not None:
            if action not in ROW_ACTIONS:
                raise InvalidInputError(f"action must be one of {list(ROW_ACTIONS)}; found {action!r}.")
            view = view[view["action"] == action]
        if flag_col is not None:
            view = view[view[flag_col].to_numpy(dtype=bool)].sort_values(score_col, ascending=False, kind="stable")
        return view.copy()

    def issue_type_summary(self) -> pd.DataFrame:
        """Rows per issue type (the label issue and every type the fit ran).

        Returns
        -------
        pandas.DataFrame
            Index ``issue_type`` (``label`` first, then the types in ``issues_`` column order); columns
            ``n_issues`` (int64), ``share`` (of the rows), ``n_dropped`` (int64: rows the issue policy
            dropped for the type, exact duplicates after their first copy) and ``dataset_score``
            (Datalab's dataset-level quality of the type, 1 = clean; NaN where it has none).
        """
        from influence_stage.api.issue_data import type_summary

        check_is_fitted(self, "issues_")
        return type_summary(self.issues_, getattr(self, "issue_report_summary_", None))

    def _review_content(self, dataset: Any) -> Any:
        """The rows' content for ``export``: ``dataset`` as given (one row per fitted row)."""
        from influence_stage.api.issue_data import content_frame

        return content_frame(dataset, self.issues_.columns)

    def export(self, path: str | os.PathLike, format: str = "label-studio", *, dataset: Any = None,
               only_flagged: bool = True, max_rows: int | None = None, order: str = "score",
               overwrite: bool = False, data_column: str | None = None) -> Path:
        """Write the flagged rows with their content for review (``influence_stage.issues.export``).

        Parameters
        ----------
        path : path
            ``format="label-studio"``: a folder (``tasks.json`` with the suggested label as a prediction,
            ``label_config.xml``, ``images/``); otherwise a file: ``.jsonl`` for ``"argilla"`` (records)
            and ``"jsonl"``, ``.parquet``, ``.csv`` (every column; images as files beside it, or PNG bytes
            in Parquet).
        format : {"label-studio", "argilla", "parquet", "jsonl", "csv"}
        dataset : optional
            The rows' content (text, images, other columns), one row per fitted row. Default: the data
            of this fit when the estimator holds it (``InfluenceCleaner`` after ``fit``); after ``load``
            pass the fitted data (checked by fingerprint). Label Studio and Argilla need a text or image
            column; the issue files do not.
        only_flagged : bool
            Only the rows with an issue of any type (``is_any_issue``, else ``is_issue``).
        max_rows : int, optional
            The first rows of ``order``.
        order : {"score", "harm"}
            Label-issue score descending, or GEX harm rank (most harmful flagged row first).
        overwrite : bool
            Replace an existing ``path``; False (default) refuses it. The files are written into a
            temporary folder beside ``path`` and renamed into place.
        data_column : str, optional
            The content column the review tool shows (default: the first image, else text column).

        Returns
        -------
        pathlib.Path
            The folder or file written, absolute.
        """
        from influence_stage.api.issue_data import write_review
        from influence_stage.issues.export import DECISION_COLUMNS, review_rows

        check_is_fitted(self, "issues_")
        names = [str(c) for c in self.classes_]
        table = self.issues_.reset_index(drop=True)
        extra = [c for c in table.columns if c not in DECISION_COLUMNS
                 and c not in ("given_label_name", "suggested_label_name", "issue_action")]
        rows = review_rows(table, table[extra] if extra else None, content=self._review_content(dataset),
                           class_names=names,
                           only_flagged=only_flagged, max_rows=max_rows, order=order)
        return write_review(rows, path, format, names, overwrite=overwrite, data_column=data_column)

    def issue_summary(self) -> pd.DataFrame:
        """Per-class counts and the estimated noise share (cleanlab's ``issue_summary`` in spirit).

        Returns
        -------
        pandas.DataFrame
            Index ``class``: the class names (``classes_`` order), then ``"all"``. Columns: those of
            ``influence_stage.decisions.decide.Decisions.summary`` (``n_rows, n_flagged, keep, drop,
            relabel, reweight, relabeled_in, n_after``, int64), ``flagged_share`` (``n_flagged /
            n_rows``) and ``estimated_noise_share``: the share of the class's rows estimated to carry
            a wrong label: the class's part of the count the run's estimate uses on its cross-fitted
            out-of-sample probabilities (``GEXConfig.estimate_count``, ``decisions.estimate
            .class_noise_share``), so under a reliable cross-fitted model and the default count the
            ``all`` row equals ``estimated_noise_rate_`` (within a few rows under ``"confident_joint"``);
            NaN when the run computed no out-of-sample probabilities.
        """
        check_is_fitted(self, "issues_")
        table = self.decisions_.summary()
        codes = [c for c in table.index if c != "all"]
        table.index = pd.Index([str(self.classes_[int(c)]) for c in codes] + ["all"], name="class", dtype=object)
        table["flagged_share"] = table["n_flagged"] / table["n_rows"].clip(lower=1)
        given = self.decisions_.table["given_label"].to_numpy()
        share = (np.full(len(self.classes_), np.nan) if self.oos_proba_ is None
                 else class_noise_share(given, self.oos_proba_, len(self.classes_), self.config_.gex.estimate_count))
        table["estimated_noise_share"] = [share[int(c)] for c in codes] + [
            float(np.nan if self.oos_proba_ is None else np.nansum(share * np.bincount(given, minlength=len(share)))
                  / len(given))]
        return table

    def log_mlflow(self, *, artifacts: Any = (), run_name: str | None = None, experiment: str | None = None,
                   tracking_uri: str | None = None, report: bool = True) -> str:
        """Log the fit to MLflow (an extra: ``pip install mlflow``); return the run id.

        Parameters are the configuration (``config_``, top-level keys; sections as their JSON);
        metrics are ``n_rows``, ``n_flagged``, ``threshold``, ``estimated_noise_rate`` (when
        estimated), the actions' counts (``actions.<action>``) and the issue types' summary
        (``issues.types.<type>.n_issues`` ..., ``influence_stage.issues.mlflow.flat_metrics``);
        artifacts are the HTML report (``report=True``) and ``artifacts`` (paths, e.g. an ``export``).

        Raises
        ------
        MissingDependencyError
            mlflow is not installed.
        """
        import json
        import tempfile

        from influence_stage.issues.mlflow import import_mlflow, log_run

        check_is_fitted(self, "issues_")
        import_mlflow()  # before any work: the error names the pip command
        config = getattr(self, "config_", None)
        params = {} if config is None else {k: v if isinstance(v, (str, int, float, bool)) or v is None
                                            else json.dumps(v, sort_keys=True)
                                            for k, v in config.model_dump(mode="json").items()}
        actions = self.issues_["action"].value_counts()
        metrics: dict[str, Any] = {"n_rows": len(self.issues_), "n_flagged": int(self.issues_["is_issue"].sum()),
                                   "threshold": float(self.threshold_),
                                   "actions": {str(k): int(v) for k, v in actions.items()}}
        if self.estimated_noise_rate_ is not None:
            metrics["estimated_noise_rate"] = float(self.estimated_noise_rate_)
        summary = getattr(self, "issue_report_summary_", None)
        if summary:
            metrics["issues"] = {"types": summary.get("types", {}), "n_any_issue": summary.get("n_any_issue")}
        with tempfile.TemporaryDirectory(prefix="influence_stage-mlflow-") as tmp:
            paths = [self.report(Path(tmp) / "report.html")] if report else []
            return log_run(params, metrics, [*paths, *[Path(a) for a in artifacts]], run_name=run_name,
                           experiment=experiment, tracking_uri=tracking_uri, tags={"producer": "influence_stage"})

    def report(self, path: str | os.PathLike | None = None, *, truth: Any = None,
               title: str = "influence_stage report") -> Any:
        """The HTML report of the fit, with the gallery of the most suspicious rows (``report.estimator``).

        Parameters
        ----------
        path : path, optional
            Where to write it (parent folders are created; written atomically).
        truth : array-like of bool, shape (n_samples,), optional
            Truly mislabeled rows (demos): adds precision / recall.
        title : str

        Returns
        -------
        pathlib.Path or HTMLReport
            With ``path``: the absolute path written. Without: an ``HTMLReport``, which a
            notebook renders (``_repr_html_``); its ``html`` attribute is the page.
        """
        from influence_stage.report import estimator_report_html, write_report

        check_is_fitted(self, "issues_")
        html = estimator_report_html(self, truth=truth, title=title)  # the published report's gallery included
        return write_report(path, html) if path is not None else HTMLReport(html)


class HTMLReport:
    """An HTML report a notebook renders: ``html`` is the page, ``save(path)`` writes it."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page (atomically); returns the absolute path."""
        from influence_stage.report import write_report

        return write_report(path, self.html)

    def __repr__(self) -> str:
        return f"HTMLReport({len(self.html)} characters)"


def with_label_names(table: pd.DataFrame, classes: np.ndarray) -> pd.DataFrame:
    """``table`` plus ``given_label_name`` / ``suggested_label_name``: ``classes[code]`` as str (a copy).

    ``suggested_label_name`` is empty (None) where ``suggested_label`` is: a flagged row with no confident
    other label (``influence_stage.decisions.suggest``).
    """
    from influence_stage.decisions.suggest import suggested_names

    out = table.copy()
    names = np.asarray([str(c) for c in classes], dtype=object)
    out["given_label_name"] = names[out["given_label"].to_numpy(dtype=np.int64)]
    out["suggested_label_name"] = pd.Series(suggested_names(out["suggested_label"], names), index=out.index,
                                            dtype=object)
    return out
