"""Entry point that ``prefect.yaml`` names: the cleaning flow, imported from the package.

Run it: ``influence-stage clean --config flows/digits.yaml`` or ``python flows/clean_dataset.py [CONFIG]``.
"""

import sys

from influence_stage.orchestration.flow import FlowConfig, clean_dataset

__all__ = ["FlowConfig", "clean_dataset"]

if __name__ == "__main__":
    print(clean_dataset(FlowConfig.from_yaml(sys.argv[1] if len(sys.argv) > 1 else "flows/digits.yaml"))["markdown"])
