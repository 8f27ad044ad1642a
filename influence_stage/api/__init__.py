"""The scikit-learn-style API: ``InfluenceCleaner`` for datasets and frames, ``InfluenceSampler`` for
imbalanced-learn pipelines.

One job per module: ``inputs`` (the input forms), ``params``
(parameters → one ``CleanConfig``), ``cleaner``, ``sampler``,
``views`` (issues, summary, report), ``fitted_data`` (is it the
fitted data?), ``gate`` (the drop-share gate that keeps a refused fit),
``output`` (``set_output``, ``get_feature_names_out``),
``model_checks`` (a passed model's sizes; untrained ``θ*``) and
``persist`` (save / load without pickle).

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
