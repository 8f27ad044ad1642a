"""``InfluenceCleaner``: the scikit-learn-style estimator that cleans a labelled dataset with GEX.

It is thin: its parameters become one ``CleanConfig``
(``influence_stage.api.params.build_config``) and ``influence_stage.stage.run.run`` runs the
stage's steps (the ones the flows and the CLI run). The checks that data is the fitted data and the
output in the input's type are in ``influence_stage.api.cleaner_transform``; the fitted attributes
are set by ``influence_stage.api.fitted_attributes``. It follows the scikit-learn contract: ``__init__``
only stores its keyword arguments, every check happens in ``fit``, fitted attributes end with ``_``,
and ``random_state`` goes through ``check_random_state``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils import TransformerTags
from sklearn.utils.validation import check_is_fitted

from influence_stage.api.cleaner_transform import CleanerTransform
from influence_stage.api.fitted_attributes import set_fitted
from influence_stage.api.fitted_data import SameDataCheck
from influence_stage.api.inputs import check_array_X, check_input
from influence_stage.api.model_checks import check_given_module, warn_if_untrained
from influence_stage.api.output import FeatureOutput, frame_feature_names
from influence_stage.api.gate import refusal, run_gated
from influence_stage.api.params import build_config
from influence_stage.api.persist import load_cleaner, save_cleaner
from influence_stage.api.views import IssueViews
from influence_stage.config import CleanConfig, FitConfig, GEXConfig
from influence_stage.config.featurize import FeaturizeConfig
from influence_stage.data.labels import encode_labels
from influence_stage.data.sources import load_source
from influence_stage.errors import InvalidInputError
from influence_stage.stage.run import GATE_MAX_DROP_FRACTION
from influence_stage.stage.results import PipelineResult, Prepared

logger = logging.getLogger(__name__)


class InfluenceCleaner(CleanerTransform, IssueViews, SameDataCheck, FeatureOutput, BaseEstimator):
    """Find and fix suspicious rows of a labelled dataset with GEX self-influence.

    ``fit`` loads the data, featurizes it, trains (or takes) a model ``θ*``, builds the geometric
    ensemble, scores every row and decides what happens to it; ``transform`` applies those decisions
    to the same dataset. Higher scores are more suspicious (typically a wrong label).

    Parameters
    ----------
    label_column : str, default "label"
        The label column.
    feature_columns : sequence of str, str or None, default None
        Feature columns (all numeric, all text, or one image column); None chooses automatically
        (see ``influence_stage.data.columns.resolve_columns``).
    model : str, torch.nn.Module, Learner or scikit-learn classifier, default "auto"
        A model name ("auto": a CNN for images, else an MLP; "mlp"; "cnn") trained on the given
        labels; a scikit-learn classifier with ``partial_fit`` and ``predict_proba``
        (``SGDClassifier(loss="log_loss")``, ``MLPClassifier(solver="sgd")``), driven by
        ``SklearnLearner`` on a copy: unfitted, it is trained
        with ``fit_config`` on the featurized (standardised) rows; fitted (on those features, with
        the label codes ``0..K-1`` as classes), it is ``θ*`` as it is; a torch checkpoint ("checkpoint:<path>" or a path ending in .pt, .pth, .bin or
        .safetensors; see ``influence_stage.engine.checkpoint.load_model``) or a local Hugging Face
        classifier folder ("hf:<folder>", text or image feature columns), loaded and used as ``θ*``;
        or a trained module / learner used as ``θ*``. See
        ``influence_stage.stage.steps.make_model_step``. A module given with arrays is checked
        against them first (input features and classes, both numbers named; see
        ``influence_stage.api.model_checks``); a given model used as ``θ*`` as it is draws a
        ``UserWarning`` when it looks untrained (mean training loss at least 0.9 ``log(K)``).
    model_builder : {"mlp", "cnn"} or None, default None
        Architecture of a checkpoint whose sidecar ``<file>.meta.json`` does not name one.
    fit_loaded : bool, default False
        Train a loaded or given model with ``fit_config`` before scoring, instead of using it as
        ``θ*`` as it is.
    hf_trainable : str, default "head"
        Parameters of an "hf:" model that SGD moves: "head", "all" or "last:N".
    action : {"drop", "relabel", "reweight", "none", "prune"}, default "drop"
        What happens to flagged rows (see ``influence_stage.decisions.decide.decide``);
        ``"prune"`` keeps the budget ``prune_keep`` by GEX self-influence and drops the rest
        (``influence_stage.decisions.prune.prune``; ``threshold`` is not used).
    prune_keep : float in (0, 1], int or None, default None
        ``action="prune"``: rows to keep, a fraction or a count.
    prune_high_share : float in [0, 1], default 0.0
        ``action="prune"``: share of the pruned rows taken from the highest self-influence; the
        rest are the lowest.
    prune_per_class : bool, default False
        ``action="prune"``: each class keeps its share of the budget (no class is emptied either way).
    score : str or None, default None
        The ranking: "gex", "gex-trimmed", "member-loss", "gex+oos", "gex+oos+aum", "oos" or "oos+aum" (see
        ``influence_stage.engine.scores``). None: ``gex_config.score`` (default "gex+oos+aum", which image
        rows rank without its GEX rank under a reliable cross-fitted model: ``GEXConfig.image_gex_rank``).
    threshold : str or float, default "estimate"
        "estimate" (the estimated number of mislabeled rows), "otsu", "gmm", "quantile:q",
        "budget:f" or a score value.
    relabel_rule : {"argmax", "soft"}, default "argmax"
        Which flagged rows can be relabeled (see ``influence_stage.decisions.decide.decide``).
    min_agreement : float in [0, 1], default 0.5
        Relabel only where the suggested label's probability (the members' and the cross-fitted
        probabilities averaged; the members' alone when the cross-fitted model is weak) is at least this;
        it must also lead the given label's by ``relabel_margin``, and reach ``weak_min_agreement`` when the
        cross-fitted model is weak (``decisions.suggest.confident_suggestions``).
    relabel_margin : float in [0, 1], default 0.3
        How far the suggested label's probability must lead the given label's for a relabel.
    weak_min_agreement : float in [0, 1], default 0.75
        The least probability of the suggested label when the cross-fitted model is weak.
    reverse_flip_alpha : float in (0, 1) or None, default 0.05
        Under a reliable cross-fitted model, a move g → s is not taken where the run's own flips run
        the other way (s → g) significantly more often at this level
        (``decisions.suggest.reverse_flip_veto``); None: no veto.
    relabel_fallback : {"drop", "keep"}, default "drop"
        Action of flagged rows that are not relabeled.
    max_fraction_per_class : float in [0, 1] or None, default 0.5
        Never drop more than this fraction of a class.
    gex_config : GEXConfig, optional
        Members, perturbation scale and scores; default ``GEXConfig()``.
    fit_config : FitConfig, optional
        Training recipe of ``θ*``; default ``FitConfig()``.
    random_state : int, RandomState or None, default None
        Every seed (``θ*`` initialisation, chains, batch order, text SVD, the gmm threshold) is drawn
        from ``check_random_state(random_state)``, replacing the seeds in ``gex_config`` /
        ``fit_config``: an int gives the same scores on every fit; None gives fresh randomness
        (numpy's global random state, as in scikit-learn). Pass an int for reproducible results.
    split : str or None, default None
        The split to read from a multi-split source (a ``DatasetDict``, a folder of ``train*`` /
        ``test*`` files, a ``DatasetDict.save_to_disk`` folder); None: the only split.
    max_drop_fraction : float in (0, 1], default 0.3
        The output gate (the same Great Expectations suite the flow runs before publishing): ``fit``
        raises ``ValidationFailedError`` when more than this share of the rows would be dropped.
        Not a cap on the decisions (``max_fraction_per_class`` is one): raise it when mass drops
        are intended. Not applied under ``action="prune"`` (the budget is the drop share).
    progress : bool, default False
        Progress bars.
    weight_column : str, default "weight"
        Column added under ``action="reweight"``.
    drop_cap : float in [0, 1] or None, default None
        A cap on the decisions: never drop more than this fraction of all rows; where it binds the
        lowest-scoring drops are kept (``is_issue`` stays True). None: no global cap. Not the output
        gate ``max_drop_fraction``, which refuses the result instead.
    normalize_labels : sequence of {"strip", "casefold", "nfc"}, default ()
        String labels that differ only in surrounding whitespace, case or Unicode normal form are
        merged into one class under the normalisations listed; other collisions are refused, naming
        them (``influence_stage.data.spelling``). Empty: every collision is refused.
    issue_types : sequence of str or None, default None
        Issue types found beside label issues (names in
        ``influence_stage.decisions.issues.ISSUE_REGISTRY``). None: every data issue type up to
        10,000 rows, only ``exact_duplicate`` above; an empty sequence: none.
    featurize_config : FeaturizeConfig, optional
        Featurizer settings, e.g. ``FeaturizeConfig(text_model="path/to/sentence-encoder")`` for
        text columns; default ``FeaturizeConfig()``. Its ``seed`` is replaced by the one derived
        from ``random_state``.
    coerce_numeric : bool, default False
        Read the cells of a column that is numeric except for a few (e.g. one ``"?"``) as missing
        values instead of refusing the data (``influence_stage.data.columns.check_numeric_columns``).
    prune_tau : float >= 0, default 0.0
        ``action="prune"``: floor of the reference loss of the self-influence the budget ranks by.
    min_weight : float in (0, 1], default 0.05
        ``action="reweight"``: lower clip of the weights.

    Attributes
    ----------
    scores_ : ndarray, shape ``(n_samples,)`` float64
        The ranking score per input row, in input order (higher = more suspicious).
    gex_influence_ : ndarray, shape ``(n_samples,)`` float64
        The exact GEX self-influence per input row.
    label_quality_ : ndarray, shape ``(n_samples,)`` float64 in [0, 1]
        Higher = cleaner; non-increasing in ``scores_``.
    estimated_noise_rate_ : float or None
        Share of rows estimated to be mislabeled (threshold "estimate"), else None.
    issues_ : pandas.DataFrame
        One row per input row, in input order: ``row_id, score, gex_influence, label_quality,
        is_issue, action, given_label, suggested_label, weight`` (the decisions table,
        ``decisions_.table``; labels as codes into ``classes_``; ``suggested_label`` is null on a
        flagged row where no label other than the given one is confident), then ``given_label_name`` and
        ``suggested_label_name``, the class names of those codes; then, per issue type the fit ran
        (``influence_stage.stage.issues``: by default every data issue type up to 10,000 rows, only
        ``exact_duplicate`` above), ``<type>_score`` (higher = more of the issue) and
        ``is_<type>_issue``, ``exact_duplicate_of`` (the position of the first copy, -1 elsewhere),
        ``is_any_issue``, ``harm`` and ``harm_rank`` (GEX cross-influence on the unflagged rows' loss;
        1 = most harmful flagged row) and ``issue_action`` (the type whose policy changed the row's
        action, ``""`` elsewhere). Views: ``get_issues``, ``issue_summary``,
        ``issue_type_summary``, ``report``, ``export``.
    issue_report_summary_ : dict or None
        The issue types' summary (``influence_stage.issues.IssueReport.summary``); None when none ran.
    decisions_ : Decisions
        The decisions table (exactly ``decisions.schema.TABLE_COLUMNS``) and the threshold, with
        ``decisions_.threshold.p_issue`` ``(n_samples,)`` float64, the probability-like score of
        being an issue (``>= 0.5`` on flagged rows).
    score_name_ : str
        The ranking computed (see ``influence_stage.engine.scores``).
    ft_lr_ : float
        The members' fine-tuning rate (chosen by the automatic scale, or given).
    oos_proba_ : ndarray, shape ``(n_samples, n_classes)`` float32, or None
        Cross-fitted out-of-sample probabilities, when the run computed them.
    members_ : list of parameter states
        The ensemble members, chain-major.
    threshold_ : float
        The score cut-off used.
    classes_ : ndarray, shape ``(n_classes,)`` str
        Class names; code ``k`` of ``issues_`` is ``classes_[k]``.
    learner_ : Learner
        The model at ``θ*``.
    result_ : GEXResult
        Everything GEX computed (loss matrix, base losses, ``ft_lr``...).
    pipeline_ : PipelineResult
        Every step's output and timings.
    config_ : CleanConfig
        The configuration used.
    dataset_fingerprint_ : str
        Content hash of the fitted dataset (with its ``row_id`` column).
    n_features_in_ : int
        Arrays only: the number of features of a 2-D ``X``.
    feature_names_in_ : ndarray, shape ``(n_features_in_,)`` object
        Only after ``fit(X_dataframe, y)`` with string column names. The names out are
        ``get_feature_names_out``; ``set_output`` chooses numpy or pandas for ``X_res``.

    Examples
    --------
    A DataFrame with a label column: 80 rows, the first four labels flipped (a small run, ``θ*``
    trained 5 epochs, 2 chains × 2 cycles = 4 members; a few seconds on a CPU):

    >>> import numpy as np, pandas as pd
    >>> from influence_stage import FitConfig, GEXConfig, InfluenceCleaner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> y[:4] = 1 - y[:4]
    >>> df = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(label=y)
    >>> cleaner = InfluenceCleaner(label_column="label", random_state=0,
    ...                            gex_config=GEXConfig(chains=2, cycles=2, ft_lr=0.1), fit_config=FitConfig(epochs=5))
    >>> cleaned = cleaner.fit_transform(df)
    >>> len(cleaned) == len(df) - int((cleaner.issues_["action"] == "drop").sum())
    True
    >>> list(cleaner.get_issues("issues").columns[:4])
    ['row_id', 'score', 'gex_influence', 'label_quality']
    """

    def __init__(self, *, label_column: str = "label", feature_columns: Any = None, model: Any = "auto",
                 action: str = "drop", score: str | None = None, threshold: str | float = "estimate",
                 min_agreement: float = 0.5, relabel_fallback: str = "drop", relabel_rule: str = "argmax",
                 relabel_margin: float = 0.3, weak_min_agreement: float = 0.75,
                 reverse_flip_alpha: float | None = 0.05, max_fraction_per_class: float | None = 0.5,
                 gex_config: GEXConfig | None = None, fit_config: FitConfig | None = None,
                 random_state: Any = None, progress: bool = False, weight_column: str = "weight",
                 model_builder: str | None = None, fit_loaded: bool = False, hf_trainable: str = "head",
                 split: str | None = None, max_drop_fraction: float = GATE_MAX_DROP_FRACTION,
                 prune_keep: float | int | None = None, prune_high_share: float = 0.0,
                 prune_per_class: bool = False, drop_cap: float | None = None,
                 normalize_labels: Any = (), issue_types: Any = None,
                 featurize_config: FeaturizeConfig | None = None, coerce_numeric: bool = False,
                 prune_tau: float = 0.0, min_weight: float = 0.05) -> None:
        self.label_column = label_column
        self.feature_columns = feature_columns
        self.model = model
        self.action = action
        self.score = score
        self.threshold = threshold
        self.min_agreement = min_agreement
        self.relabel_fallback = relabel_fallback
        self.relabel_rule = relabel_rule
        self.relabel_margin = relabel_margin
        self.weak_min_agreement = weak_min_agreement
        self.reverse_flip_alpha = reverse_flip_alpha
        self.max_fraction_per_class = max_fraction_per_class
        self.gex_config = gex_config
        self.fit_config = fit_config
        self.random_state = random_state
        self.progress = progress
        self.weight_column = weight_column
        self.model_builder = model_builder
        self.fit_loaded = fit_loaded
        self.hf_trainable = hf_trainable
        self.split = split
        self.max_drop_fraction = max_drop_fraction
        self.prune_keep = prune_keep
        self.prune_high_share = prune_high_share
        self.prune_per_class = prune_per_class
        self.drop_cap = drop_cap
        self.normalize_labels = normalize_labels
        self.issue_types = issue_types
        self.featurize_config = featurize_config
        self.coerce_numeric = coerce_numeric
        self.prune_tau = prune_tau
        self.min_weight = min_weight

    # -- helpers ---------------------------------------------------------------------------------
    def _check_input(self, dataset: Any, y: Any, method: str) -> tuple[str, Any, bool]:
        """``(kind, source, had_row_id)``: see ``influence_stage.api.inputs.check_input``."""
        return check_input(dataset, y, method, label_column=self.label_column, split=self.split)

    def _config(self) -> tuple[CleanConfig, Any]:
        return build_config(
            model=self.model, gex_config=self.gex_config, fit_config=self.fit_config,
            random_state=self.random_state, label_column=self.label_column,
            feature_columns=None if self.feature_columns is None else (
                self.feature_columns if isinstance(self.feature_columns, str) else tuple(self.feature_columns)),
            action=self.action, score=self.score, threshold=self.threshold, min_agreement=self.min_agreement,
            relabel_fallback=self.relabel_fallback, relabel_rule=self.relabel_rule,
            relabel_margin=self.relabel_margin, weak_min_agreement=self.weak_min_agreement,
            reverse_flip_alpha=self.reverse_flip_alpha, max_fraction_per_class=self.max_fraction_per_class,
            weight_column=self.weight_column, model_builder=self.model_builder, fit_loaded=self.fit_loaded,
            hf_trainable=self.hf_trainable, split=self.split, prune_keep=self.prune_keep,
            prune_high_share=self.prune_high_share, prune_per_class=self.prune_per_class, drop_cap=self.drop_cap,
            normalize_labels=() if self.normalize_labels is None else self.normalize_labels,
            issue_types=self.issue_types,
            featurize_config=self.featurize_config, coerce_numeric=self.coerce_numeric, prune_tau=self.prune_tau,
            min_weight=self.min_weight,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # transform changes rows and labels of the data it was fitted on (and refuses any other data):
        # a transformer of datasets, not a feature map; an array's dtype is kept.
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        tags.target_tags.required = True  # the labels are the data: in y, or in label_column
        tags.input_tags.two_d_array = True  # fit(X, y) with numeric X (n_samples, n_features)
        tags.input_tags.three_d_array = True  # (n, h, w) images
        tags.input_tags.string = True  # text columns of a Dataset / DataFrame
        tags.input_tags.allow_nan = True  # NaN cells of a 2-D X are filled and reported as null issues
        tags.input_tags.sparse = False
        return tags

    # -- API -------------------------------------------------------------------------------------
    def fit(self, dataset: Any, y: Any = None) -> "InfluenceCleaner":
        """Score every row and decide what happens to it.

        Parameters
        ----------
        dataset : Dataset, DatasetDict, DataFrame, path, (X, y) or array X
            ``n`` labelled rows: a ``datasets.Dataset``; a ``datasets.DatasetDict`` (the split named
            by ``split``, or its only split); a ``pandas.DataFrame``; a local parquet / csv / json
            file or folder of them, or a ``save_to_disk`` folder (read by content; see
            ``influence_stage.data.sources.load_source``); a tuple ``(X, y)``; or a numeric array ``X``
            ``(n_samples, n_features)`` (or ``(n, h, w)`` images), or a ``pandas.DataFrame`` of numeric
            features, with the labels in ``y``.
        y : array-like of shape (n_samples,), optional
            The labels of an array or a DataFrame of features ``X``; must be None for every other
            source (whose labels are ``label_column``).

        Returns
        -------
        self

        Raises
        ------
        ValidationFailedError
            The output gate refused the result: more than ``max_drop_fraction`` of the rows would be
            dropped. The fitted attributes are set first (``scores_``, ``issues_``, ``get_issues()``,
            ``issue_summary()``, ``report()`` work); ``transform`` and ``save`` refuse until a fit passes.
        """
        kind, source, _ = self._check_input(dataset, y, "fit")
        return self._fit(kind, source, frame_feature_names(dataset) if y is not None else None)

    def _fit(self, kind: str, source: Any, feature_names: np.ndarray | None) -> "InfluenceCleaner":
        config, model = self._config()
        if kind == "arrays":
            check_given_module(model, source[0], source[1], estimator="InfluenceCleaner")
        result, limit = run_gated(source, config, model, progress=self.progress,
                                  max_drop_fraction=self.max_drop_fraction)
        self._set_fitted(result, config)
        self._input_kind_ = kind
        for stale in ("n_features_in_", "feature_names_in_", "_fitted_y_"):
            self.__dict__.pop(stale, None)
        if kind == "arrays":
            X = source[0]
            if X.ndim == 2:
                self.n_features_in_ = int(X.shape[1])
            if feature_names is not None:
                self.feature_names_in_ = feature_names
            self._fitted_y_ = source[1]
        warn_if_untrained(model, config.fit_loaded, self._base_loss_, len(self.classes_),
                          fix="train the module on these rows first, or pass fit_loaded=True to train it with "
                              "fit_config.")
        refused = refusal(result.decisions.table, config, limit, "InfluenceCleaner",
                          "drop_cap=, max_fraction_per_class= or a stricter threshold=")
        self._refused_ = None if refused is None else str(refused)
        if refused is not None:  # after the fitted attributes: the work stays for inspection
            raise refused
        return self

    def _set_fitted(self, result: PipelineResult, config: CleanConfig) -> None:
        set_fitted(self, result, config)

    # -- save / load without pickle (influence_stage.api.persist) -------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted result to a folder, without pickle (see ``influence_stage.api.persist.save_cleaner``).

        Parameters
        ----------
        path : path
            A folder; created if missing. Files of a previous save there are replaced.

        Returns
        -------
        pathlib.Path
            The folder, absolute.
        """
        check_is_fitted(self, "issues_")
        self._check_not_refused("save")
        return save_cleaner(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, dataset: Any = None) -> "InfluenceCleaner":
        """A cleaner saved by ``save``, ready to ``transform`` the dataset it was fitted on (see
        ``influence_stage.api.persist.load_cleaner``).

        Parameters
        ----------
        path : path
            The folder written by ``save``.
        dataset : optional
            The fitted data (any form ``fit`` takes): checked against the saved fingerprint now.

        Raises
        ------
        InvalidInputError
            A missing or changed file, another format version, tables that disagree, or a
            ``dataset`` other than the fitted one (the message says what differs).
        """
        return load_cleaner(cls, path, dataset=dataset)

    def transform(self, dataset: Any, y: Any = None) -> Any:
        """Apply the fitted decisions to the fitted dataset.

        Parameters
        ----------
        dataset : Dataset, DatasetDict, DataFrame, path, (X, y) or array X
            The data given to ``fit``, in the same form (same content and order; checked by
            fingerprint). A path is read again, so a file changed since ``fit`` is refused. For an
            array ``X`` fitted with ``fit(X, y)``, ``y`` may be left out (the fitted labels are used).
        y : array-like of shape (n_samples,), optional
            The labels of an array ``X``.

        Returns
        -------
        datasets.Dataset, pandas.DataFrame, tuple (X_res, y_res) or ndarray X_res
            The form of the input: a ``Dataset`` for a Dataset, a DatasetDict or a path; a
            ``DataFrame`` for a DataFrame; ``(X_res, y_res)`` numpy arrays for a tuple ``(X, y)``;
            ``X_res`` alone for an array ``X`` (with or without ``y``: the transformer contract,
            ``fit(X, y).transform(X)``; pass the tuple, or use ``InfluenceSampler``, to get the
            relabeled ``y_res`` too). Dropped rows are removed, relabeled rows get the new label (a
            ``ClassLabel`` keeps its names; arrays and frames keep their label dtype), every other
            column untouched (a DataFrame keeps its index; a ``row_id`` column is kept only if the
            input had one). Under ``action="reweight"`` a Dataset or DataFrame gains a float64
            ``weight_column`` in ``(0, 1]``; for arrays the weights of the kept rows are
            ``issues_["weight"]`` on the rows whose action is not ``drop``.

        Raises
        ------
        InvalidInputError
            A label not seen in ``fit`` (named, with its row), or data other than the fitted data
            (the message says what differs); an array with another number of features.
        """
        check_is_fitted(self, "issues_")
        self._check_not_refused("transform")
        if dataset is not None and y is None and getattr(self, "_input_kind_", None) == "arrays" \
                and not isinstance(dataset, tuple):
            X = check_array_X(dataset)
            n_fitted = getattr(self, "n_features_in_", None)
            if n_fitted is not None and (X.ndim != 2 or X.shape[1] != n_fitted):
                found = X.shape[1] if X.ndim == 2 else f"shape {X.shape}"
                raise InvalidInputError(
                    f"X has {found} features, but InfluenceCleaner is expecting {n_fitted} features as input "
                    "(the arrays given to fit). Fix: transform the arrays given to fit."
                )
            if len(X) != len(self._fitted_y_):
                raise InvalidInputError(
                    f"transform expects the arrays given to fit: X has {len(X)} rows, fit had {len(self._fitted_y_)}. "
                    "Fix: call fit (or fit_transform) on these arrays."
                )
            y = self._fitted_y_
        fitted_names = getattr(self, "feature_names_in_", None)
        if fitted_names is not None and isinstance(dataset, pd.DataFrame) \
                and not np.array_equal(frame_feature_names(dataset), fitted_names):
            raise InvalidInputError(
                f"the feature names should match those passed to fit: found {list(dataset.columns)[:5]}, fitted "
                f"{list(fitted_names)[:5]}. Fix: transform the DataFrame given to fit.")
        labels_out = isinstance(dataset, tuple)  # (X, y) in, (X_res, y_res) out; X in, X_res out
        kind, source, had_row_id = self._check_input(dataset, y, "transform")
        ds = load_source(source, label_column=self.config_.label_column)
        # Labels first: an unseen label is named with its row before the generic content check.
        codes = encode_labels(ds, self.config_.label_column, fitted=self.encoding_).codes
        self._check_same_dataset(ds, codes)
        prepared = Prepared(dataset=ds, roles=self._roles_, encoding=self.encoding_)
        index = dataset.index if isinstance(dataset, pd.DataFrame) else None
        out = self._output(kind, source, had_row_id, prepared, index=index)
        return out if kind != "arrays" or labels_out else out[0]

    def fit_transform(self, dataset: Any, y: Any = None) -> Any:
        """``fit(dataset, y)`` then the cleaned data (computed once, by the pipeline's apply step).

        Returns
        -------
        datasets.Dataset, pandas.DataFrame, tuple (X_res, y_res) or ndarray X_res
            See ``transform``.
        """
        kind, source, had_row_id = self._check_input(dataset, y, "fit")
        self._fit(kind, source, frame_feature_names(dataset) if y is not None else None)
        cleaned = self.pipeline_.cleaned if kind == "dataset" else None
        index = dataset.index if isinstance(dataset, pd.DataFrame) else None
        out = self._output(kind, source, had_row_id, self.pipeline_.prepared, cleaned, index=index)
        return out if kind != "arrays" or isinstance(dataset, tuple) else out[0]
