"""The scikit-learn-style API: ``InfluenceCleaner`` for datasets and frames, ``InfluenceSampler`` for
imbalanced-learn pipelines.

One job per module: :mod:`~influence_stage.api.inputs` (the input forms), :mod:`~influence_stage.api.params`
(parameters → one ``CleanConfig``), :mod:`~influence_stage.api.cleaner`, :mod:`~influence_stage.api.sampler`,
:mod:`~influence_stage.api.views` (issues, summary, report), :mod:`~influence_stage.api.fitted_data` (is it the
fitted data?), :mod:`~influence_stage.api.gate` (the drop-share gate that keeps a refused fit),
:mod:`~influence_stage.api.output` (``set_output``, ``get_feature_names_out``),
:mod:`~influence_stage.api.model_checks` (a passed model's sizes; untrained θ*) and
:mod:`~influence_stage.api.persist` (save / load without pickle).

``InfluenceSampler`` needs the optional package imbalanced-learn (the ``dev`` extra); without it this
package still imports and ``InfluenceCleaner`` works, while importing ``InfluenceSampler`` raises an
``ImportError`` saying what to install.
"""

from __future__ import annotations

from typing import Any

from influence_stage.api.cleaner import InfluenceCleaner
from influence_stage.api.views import HTMLReport

_IMBLEARN_MISSING = (
    "InfluenceSampler needs the optional package imbalanced-learn, which is not installed. "
    "Fix: pip install 'influence_stage[dev]' (or pip install imbalanced-learn). "
    "InfluenceCleaner works without it."
)


def __getattr__(name: str) -> Any:
    """``InfluenceSampler`` on first use; without imbalanced-learn a clear ImportError instead of an AttributeError."""
    if name == "InfluenceSampler":
        try:
            import imblearn.base  # noqa: F401
        except ImportError as exc:
            raise ImportError(_IMBLEARN_MISSING) from exc
        from influence_stage.api.sampler import InfluenceSampler

        return InfluenceSampler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HTMLReport", "InfluenceCleaner", "InfluenceSampler"]
