"""One seed derives every sub-seed, the same way on every surface (estimators, CLI, flows).

The stage has four places that draw random numbers: ``θ*`` initialisation and the member chains
(``GEXConfig.seed``), the batch order of training (``FitConfig.seed``), the text featurizer's SVD
(``FeaturizeConfig.seed``) and the gmm threshold (``CleanConfig.seed``). ``derive_seeds`` draws
all four from one ``random_state`` with ``sklearn.utils.check_random_state``, so ``random_state=0``
on an estimator and ``--seed 0`` on the command line give the same sub-seeds, hence the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sklearn.utils import check_random_state

SEED_HIGH = 2**31 - 1
"""Sub-seeds are drawn from ``[0, SEED_HIGH)``."""


@dataclass(frozen=True)
class StageSeeds:
    """The sub-seeds of one run.

    Attributes
    ----------
    gex : int
        ``GEXConfig.seed``: ``θ*`` initialisation and the member chains.
    fit : int
        ``FitConfig.seed``: the batch order of training.
    featurize : int
        ``FeaturizeConfig.seed``: the text featurizer's SVD.
    run : int
        ``CleanConfig.seed``: the gmm threshold.
    """

    gex: int
    fit: int
    featurize: int
    run: int


def derive_seeds(random_state: Any) -> StageSeeds:
    """Every sub-seed of a run from one seed.

    Parameters
    ----------
    random_state : int, numpy.random.RandomState or None
        Through ``check_random_state``: an int gives the same four sub-seeds every time; a
        ``RandomState`` is advanced by one draw of four; None draws from numpy's global random state
        (fresh randomness, as in scikit-learn).

    Returns
    -------
    StageSeeds
        Four ints in ``[0, SEED_HIGH)``, drawn in the order gex, fit, featurize, run (one
        ``randint(0, SEED_HIGH, size=4)``; the order is part of the rule: changing it changes every
        score).

    Examples
    --------
    >>> derive_seeds(0) == derive_seeds(0)
    True
    """
    rng = check_random_state(random_state)
    gex, fit, featurize, run = (int(s) for s in rng.randint(0, SEED_HIGH, size=4))
    return StageSeeds(gex=gex, fit=fit, featurize=featurize, run=run)


def seeded_sections(config: Any, random_state: Any) -> dict[str, Any]:
    """The seeded sections of a stage configuration: ``{"gex", "fit", "featurize", "seed"}``.

    Parameters
    ----------
    config : mapping
        Holds ``"gex"`` (a ``GEXConfig``) and ``"fit"`` (a ``FitConfig``), and optionally
        ``"featurize"`` (a ``FeaturizeConfig``; default ``FeaturizeConfig()``).
    random_state : int, numpy.random.RandomState or None
        See ``derive_seeds``.

    Returns
    -------
    dict
        ``gex`` / ``fit`` / ``featurize``: copies of the sections with their ``seed`` replaced by the
        derived sub-seed; ``seed``: the run's own seed (the gmm threshold). Merge it into the mapping
        ``CleanConfig.from_mapping`` validates.
    """
    from influence_stage.config.featurize import FeaturizeConfig

    seeds = derive_seeds(random_state)
    featurize = config.get("featurize") or FeaturizeConfig()
    return {
        "gex": config["gex"].model_copy(update={"seed": seeds.gex}),
        "fit": config["fit"].model_copy(update={"seed": seeds.fit}),
        "featurize": featurize.model_copy(update={"seed": seeds.featurize}),
        "seed": seeds.run,
    }


__all__ = ["SEED_HIGH", "StageSeeds", "derive_seeds", "seeded_sections"]
