"""``--seed N`` on the command line and ``random_state=N`` on the estimators follow the one rule of
``influence_stage.seeds``: the same sub-seeds, hence the same scores on the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from influence_stage.cli import _parser, flow_config
from influence_stage.config import FitConfig, GEXConfig

ROOT = Path(__file__).resolve().parents[2]
GEX = {"chains": 2, "cycles": 2, "ft_lr": 0.1, "probe_chains": 2}
FIT = {"epochs": 5}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("src") / "d.parquet"
    pd.read_parquet(ROOT / "data" / "digits" / "train.parquet").drop(columns=["image"]).head(120).to_parquet(path)
    return str(path)


def _cli_config(tmp_path: Path, source: str, seed: int):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"source": source, "name": "s", "clean": {"gex": GEX, "fit": FIT}}))
    args = _parser().parse_args(["clean", "--config", str(config), "--model", "mlp", "--feature-columns", "px_*",
                                 "--seed", str(seed)])
    return flow_config(args).clean


@pytest.mark.parametrize("seed", [0, 12345])
def test_seed_gives_the_estimators_sub_seeds(tmp_path, source, seed):
    from influence_stage.api.params import build_config

    cli = _cli_config(tmp_path, source, seed)
    est, _ = build_config(model="mlp", gex_config=GEXConfig(**GEX), fit_config=FitConfig(**FIT), random_state=seed)
    assert (cli.gex.seed, cli.fit.seed, cli.featurize.seed, cli.seed) == (est.gex.seed, est.fit.seed,
                                                                          est.featurize.seed, est.seed)
    assert len({cli.gex.seed, cli.fit.seed, cli.featurize.seed, cli.seed}) == 4


def test_seed_0_and_random_state_0_give_identical_scores(tmp_path, source):
    from influence_stage import InfluenceCleaner
    from influence_stage.stage.run import run_pipeline

    cli = _cli_config(tmp_path, source, 0)
    cleaner = InfluenceCleaner(feature_columns=["px_*"], model="mlp", random_state=0, gex_config=GEXConfig(**GEX),
                               fit_config=FitConfig(**FIT)).fit(source)
    scores = run_pipeline(source, cli).gex_result.scores
    assert scores.shape == (120,)
    np.testing.assert_array_equal(scores, cleaner.scores_)
    other = run_pipeline(source, _cli_config(tmp_path, source, 1)).gex_result.scores
    assert not np.array_equal(other, scores)  # the seed matters
