"""What the subcommands share: exit codes, the examples shown by ``--help`` and the registries' names in it."""

from __future__ import annotations

from typing import Any

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


class RegistryNames:
    """A registry's entries as help text, read only when ``--help`` is printed.

    argparse fills ``%(name)s`` in a flag's help from the flag's attributes when it formats the help,
    so a flag whose help says ``%(names)s`` and whose ``names`` attribute is one of these lists the
    registry's entries without importing the registry (and what it imports, e.g. ``datasets``) for
    every other command.

    Parameters
    ----------
    module : str
        The module that holds the registry.
    registry : str
        The registry's name in that module.
    builtin : tuple of (name, help), optional
        The registry's built-in entries, declared beside the flag: listed while ``module`` is not imported
        yet, so ``--help`` imports neither it nor what it imports (torch, ``datasets``); a test keeps them
        equal to the registry's. An entry registered by user code is listed too: registering it imported
        ``module``, and the registry is then read. Empty: the registry is always read.
    """

    def __init__(self, module: str, registry: str, builtin: tuple[tuple[str, str], ...] = ()) -> None:
        self.module, self.registry, self.builtin = module, registry, tuple(builtin)

    def entries(self) -> list[tuple[str, str]]:
        """``(name, help)`` of every registered class, in registration order."""
        import importlib
        import sys

        if self.builtin and self.module not in sys.modules:
            return list(self.builtin)
        registry = getattr(importlib.import_module(self.module), self.registry)
        return [(name, getattr(cls, "help", "")) for name, cls in registry.items()]

    def __str__(self) -> str:
        entries = self.entries()
        if not any(text for _, text in entries):
            return ", ".join(name for name, _ in entries)
        return "; ".join(f"{name} ({text})" if text else name for name, text in entries)


def registry_help(action: Any, module: str, registry: str, builtin: tuple[tuple[str, str], ...] = ()) -> Any:
    """Give ``action`` (an added flag) the ``names`` its help's ``%(names)s`` lists (see ``RegistryNames``)."""
    action.names = RegistryNames(module, registry, builtin)
    return action
