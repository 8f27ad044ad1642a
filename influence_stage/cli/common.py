"""What the subcommands share: exit codes and the examples shown by ``--help``."""

from __future__ import annotations

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_GATE = 0, 1, 2, 3
"""Done; an unexpected error; bad input or configuration; a validation gate failed (nothing published)."""

EXAMPLES = """examples:
  influence-stage clean --config flows/digits.yaml
  influence-stage clean --source data/digits/train.parquet --label-column label \\
      --feature-columns 'px_*' --action relabel --name digits
  influence-stage clean --config flows/digits.yaml --score gex --threshold otsu
  influence-stage clean --source my_data.csv --label-column y --action reweight --threshold budget:0.05 --name mine
  influence-stage clean --config flows/digits.yaml --dask tcp://scheduler:8786
  influence-stage clean --config flows/digits.yaml --dask-workers 2 --device auto --progress
  influence-stage server start        # local Prefect server + work pool + worker + the prefect.yaml deployment
  influence-stage server stop
  PREFECT_API_URL=http://host:4200/api influence-stage server deploy --pool influence-stage
  influence-stage serve --config flows/digits.yaml --cron "0 3 * * *"   # needs PREFECT_API_URL
  influence-stage report data/published/digits/v0001
  influence-stage versions data/published/digits
  influence-stage export data/published/digits --out review/ --source data/digits/train.parquet
  influence-stage import-reviews project-export.json --from data/published/digits --out reviews.csv
"""
