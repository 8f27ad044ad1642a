"""``InfluenceSampler``: an imbalanced-learn sampler that removes, relabels or reweights suspicious rows (GEX).

It needs the optional package imbalanced-learn (the ``dev`` extra); importing this module without it
raises ``ImportError``, and ``influence_stage.api`` turns that into a message saying what to install.
Like ``InfluenceCleaner`` it is thin: its parameters become one
``CleanConfig`` (``influence_stage.api.params.build_config``) and
``influence_stage.stage.run.run`` runs the steps.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from imblearn.base import BaseSampler

from influence_stage.api.gate import refusal, run_gated
from influence_stage.api.model_checks import check_given_module, warn_if_untrained
from influence_stage.api.params import build_config
from influence_stage.api.issue_data import fit_issues, issues_frame
from influence_stage.api.views import IssueViews, with_label_names
from influence_stage.config import FitConfig, GEXConfig
from influence_stage.decisions.apply import decision_arrays, relabel_targets
from influence_stage.stage.run import GATE_MAX_DROP_FRACTION

logger = logging.getLogger(__name__)

REWEIGHT_WEIGHTS_APART = (
    "InfluenceSampler(action='reweight') keeps every row: X_res, y_res are the input, and the weights are only in "
    "sampler.sample_weight_. imbalanced-learn's sampler contract (fit_resample returns (X_res, y_res)) has no place "
    "for weights, so an imblearn Pipeline would pass the rows to the next step without them. Fix: fit the sampler "
    "on its own and pass the weights, X_res, y_res = sampler.fit_resample(X, y); "
    "clf.fit(X_res, y_res, sample_weight=sampler.sample_weight_[sampler.sample_indices_]); or use action='drop' or "
    "'relabel' inside a Pipeline."
)
"""The warning of every ``fit_resample`` under ``action="reweight"``. A sampler cannot tell whether a
Pipeline called it (imbalanced-learn declares no such thing), so it says where its weights are each time;
silence it with ``warnings.filterwarnings("ignore", message="InfluenceSampler\\(action='reweight'\\)")``
once the weights are passed on."""


class InfluenceSampler(IssueViews, BaseSampler):
    """imbalanced-learn sampler that removes, relabels or reweights suspicious rows (GEX).

    Use it as a step of ``imblearn.pipeline.Pipeline`` in front of any classifier; it runs only
    at fit time (``fit_resample``). Features must be numeric ``(n_samples, n_features)``; they
    are standardised before ``θ*`` is trained, and ``X_res`` holds the original rows.

    Parameters
    ----------
    model : str, torch.nn.Module, Learner or scikit-learn classifier, default "mlp"
        A model name trained on ``(X, y)``; a torch checkpoint path (trained on the
        standardised features; see ``InfluenceCleaner``); a module / learner already
        trained on them; or a scikit-learn classifier with ``partial_fit`` and
        ``predict_proba`` (see ``InfluenceCleaner``: unfitted, it is trained here).
    action : {"drop", "relabel", "reweight", "none", "prune"}, default "drop"
        ``drop``: flagged rows are removed. ``relabel``: flagged rows get the members' consensus
        label (flagged rows without a confident consensus are removed). ``reweight``: every row
        is kept and ``sample_weight_`` is set. ``none``: only ``scores_``. ``prune``: the budget
        ``prune_keep`` of rows is kept by GEX self-influence, the rest removed.

        ``reweight`` does not belong inside an imblearn ``Pipeline``: the sampler contract returns
        only ``(X_res, y_res)`` (imbalanced-learn 0.14 has no way to route a sampler's weights), so
        the weights would never reach the classifier. Every ``fit_resample`` under ``reweight``
        therefore warns (``UserWarning``, ``REWEIGHT_WEIGHTS_APART``) that the weights are in
        ``sample_weight_`` only. Fit the sampler on its own and pass the weights yourself::

            X_res, y_res = sampler.fit_resample(X, y)
            clf.fit(X_res, y_res, sample_weight=sampler.sample_weight_[sampler.sample_indices_])
    score : str or None, default None
        The ranking (see ``InfluenceCleaner``); None: ``gex_config.score``.
    threshold : str or float, default "estimate"
        See ``influence_stage.decisions.thresholds.choose_threshold``.
    relabel_rule : {"argmax", "soft"}, default "argmax"
        Which flagged rows can be relabeled (see ``influence_stage.decisions.decide.decide``).
    sampling_strategy : str, list or callable, default "auto"
        Classes whose rows may be changed, as for imbalanced-learn's cleaning samplers:
        ``"auto"`` = ``"not minority"``, ``"all"``, ``"majority"``, ``"not majority"``, a list
        of labels, or a callable. Rows of other classes are always kept as they are.
    gex_config : GEXConfig, optional
    fit_config : FitConfig, optional
    random_state : int, RandomState or None, default None
        As for ``InfluenceCleaner``.
    max_drop_fraction : float in (0, 1], default 0.3
        As for ``InfluenceCleaner``: the output gate's limit on the dropped share.
    prune_keep, prune_high_share, prune_per_class
        ``action="prune"``, as for ``InfluenceCleaner``; the budget counts the rows of the
        classes ``sampling_strategy`` targets, the other rows are kept.
    drop_cap : float in [0, 1] or None, default None
        As for ``InfluenceCleaner``: a cap on the decisions (never drop more than this fraction of
        all rows), not the output gate.
    prune_tau : float >= 0, default 0.0
        ``action="prune"``, as for ``InfluenceCleaner``.
    min_weight : float in (0, 1], default 0.05
        ``action="reweight"``: lower clip of ``sample_weight_``.

    Attributes
    ----------
    scores_ : ndarray, shape ``(n_samples,)`` float64
        The ranking score of every input row (higher = more suspicious).
    gex_influence_ : ndarray, shape ``(n_samples,)`` float64
        The exact GEX self-influence of every input row.
    estimated_noise_rate_ : float or None
        Share of rows estimated to be mislabeled (threshold "estimate"), else None.
    sample_indices_ : ndarray, shape ``(n_resampled,)`` int64
        Input rows kept, in order; ``X_res = X[sample_indices_]``.
    sample_weight_ : ndarray, shape ``(n_samples,)`` float64 in ``(0, 1]``
        Per input row: the weight of reweighted rows, 1.0 elsewhere. For ``X_res`` use
        ``sample_weight_[sample_indices_]``.
    issues_ : pandas.DataFrame
        The decisions table (row ids ``0..n-1``, labels as codes into ``classes_``), then the issue
        types' columns (as ``InfluenceCleaner``'s ``issues_``; reported only: the sampler's
        indices follow the decisions table).
    classes_ : ndarray
        The labels, sorted (``LabelEncoder``).
    threshold_ : float
    members_, learner_, result_, config_ : as for ``InfluenceCleaner``.
    sampling_strategy_ : dict
        Targeted classes (keys).
    decisions_ : Decisions
        The decisions table and the threshold (as for ``InfluenceCleaner``).
    score_name_ : str
        The ranking computed.
    ft_lr_ : float
        The members' fine-tuning rate.
    oos_proba_ : ndarray, shape ``(n_samples, n_classes)`` float32, or None
        Cross-fitted out-of-sample probabilities, when the run computed them.

    Notes
    -----
    ``get_issues``, ``issue_summary`` and ``report`` work as on ``InfluenceCleaner``. When the
    output gate refuses the result (more than ``max_drop_fraction`` of the rows would be dropped),
    ``fit_resample`` raises ``ValidationFailedError`` after setting every attribute above, so the
    work can be inspected.

    Examples
    --------
    Arrays in, resampled arrays out (a small run, ``θ*`` trained 5 epochs, 4 members):

    >>> import numpy as np
    >>> from influence_stage import FitConfig, GEXConfig, InfluenceSampler
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> y[:4] = 1 - y[:4]
    >>> sampler = InfluenceSampler(random_state=0, gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.1),
    ...                            fit_config=FitConfig(epochs=5))
    >>> X_res, y_res = sampler.fit_resample(X, y)
    >>> X_res.shape[0] == len(sampler.sample_indices_) <= len(X)
    True
    >>> sampler.scores_.shape
    (80,)
    """

    _sampling_type = "clean-sampling"
    # Parameters are validated by CleanConfig in _fit_resample (errors from exceptions.py).
    _parameter_constraints: dict = {}

    def __init__(self, *, model: Any = "mlp", action: str = "drop", score: str | None = None,
                 threshold: str | float = "estimate", relabel_rule: str = "argmax",
                 sampling_strategy: Any = "auto", gex_config: GEXConfig | None = None,
                 fit_config: FitConfig | None = None, random_state: Any = None,
                 max_drop_fraction: float = GATE_MAX_DROP_FRACTION, prune_keep: float | int | None = None,
                 prune_high_share: float = 0.0, prune_per_class: bool = False,
                 drop_cap: float | None = None, prune_tau: float = 0.0, min_weight: float = 0.05) -> None:
        super().__init__(sampling_strategy=sampling_strategy)
        self.model = model
        self.action = action
        self.score = score
        self.threshold = threshold
        self.relabel_rule = relabel_rule
        self.gex_config = gex_config
        self.fit_config = fit_config
        self.random_state = random_state
        self.max_drop_fraction = max_drop_fraction
        self.prune_keep = prune_keep
        self.prune_high_share = prune_high_share
        self.prune_per_class = prune_per_class
        self.drop_cap = drop_cap
        self.prune_tau = prune_tau
        self.min_weight = min_weight

    def _check_X_y(self, X, y, accept_sparse=None):
        # Dense only: the features become a float32 tensor. A DataFrame of pandas sparse columns is
        # densified (``X_res`` comes back with the frame's own sparse dtypes); scipy sparse matrices
        # are refused (densifying one could need far more memory than the caller expects).
        if isinstance(X, pd.DataFrame) and any(isinstance(d, pd.SparseDtype) for d in X.dtypes):
            X = X.sparse.to_dense()
        return super()._check_X_y(X, y, accept_sparse=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False  # scipy sparse X: refused (TypeError "dense data is required")
        tags.input_tags.dataframe = True  # DataFrames, pandas sparse columns included (densified)
        tags.sampler_tags.sample_indices = True  # sample_indices_ is set by every fit_resample
        return tags

    def _fit_resample(self, X, y):
        from sklearn.preprocessing import LabelEncoder

        if self.action == "reweight":  # before the run: the gates' imports reroute warnings to logging
            warnings.warn(REWEIGHT_WEIGHTS_APART, UserWarning, stacklevel=4)
        config, model = build_config(model=self.model, gex_config=self.gex_config, fit_config=self.fit_config,
                                      random_state=self.random_state, action=self.action, score=self.score,
                                      threshold=self.threshold, relabel_rule=self.relabel_rule,
                                      prune_keep=self.prune_keep, prune_high_share=self.prune_high_share,
                                      prune_per_class=self.prune_per_class, drop_cap=self.drop_cap,
                                      prune_tau=self.prune_tau, min_weight=self.min_weight)
        y = np.asarray(y)
        check_given_module(model, np.asarray(X), y, estimator="InfluenceSampler")
        encoder = LabelEncoder().fit(y)
        codes = encoder.transform(y).astype(np.int64)
        targeted = np.isin(y, np.asarray(list(self.sampling_strategy_), dtype=y.dtype))
        run_result, limit = run_gated((np.asarray(X), codes), config, model, only_rows=targeted,
                                      max_drop_fraction=self.max_drop_fraction)
        result, decisions = run_result.gex_result, run_result.decisions
        table = decisions.table
        keep, relabel_mask, weight = decision_arrays(table)
        relabel = np.flatnonzero(relabel_mask)
        y_res = y.copy()
        if relabel.size:
            # a relabel row always has a suggestion (decisions.decide); relabel_targets refuses an empty one
            y_res[relabel] = encoder.inverse_transform(relabel_targets(table, relabel_mask, len(encoder.classes_)))

        self.config_ = config
        self.classes_ = encoder.classes_
        self.scores_ = np.asarray(result.scores, dtype=np.float64)
        self.gex_influence_ = np.asarray(result.gex_influence, dtype=np.float64)
        self.estimated_noise_rate_ = decisions.threshold.estimated_noise_rate
        report = fit_issues(run_result, config)
        self.issue_report_summary_ = None if report is None else report.summary
        self.issues_ = issues_frame(with_label_names(table, encoder.classes_), report)
        self.threshold_ = float(decisions.threshold.value)
        self.sample_indices_ = keep.astype(np.int64)
        self.sample_weight_ = weight
        self.members_ = result.members
        self.learner_ = result.learner
        self.result_ = result
        self.decisions_ = decisions
        self.score_name_ = result.score_name
        self._evidence_first_ = bool(result.evidence_first)  # how scores_ was built (engine.scores)
        self.ft_lr_ = float(result.ft_lr)
        self.oos_proba_ = result.oos_proba
        warn_if_untrained(model, config.fit_loaded, np.asarray(result.base_loss), len(encoder.classes_),
                          fix="train the module on the standardised features first, or pass a model name such as "
                              "'mlp' (trained here).", stacklevel=5)
        refused = refusal(table, config, limit, "InfluenceSampler", "drop_cap=, a stricter threshold= or sampling_strategy=")
        if refused is not None:  # after the fitted attributes: the work stays for inspection
            raise refused
        logger.info("InfluenceSampler: %d of %d rows kept, %d relabeled, %d reweighted", keep.size, len(y),
                    relabel.size, int((table["action"] == "reweight").sum()))
        return X[keep], y_res[keep]
