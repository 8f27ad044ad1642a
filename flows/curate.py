"""Entry point of the curation flow, imported from the package.

Run it: ``influence-stage curate --config flows/corpus.yaml`` or ``python flows/curate.py [CONFIG]``.
"""

import sys

from influence_stage.orchestration.curate import CurateConfig, curate_corpus

__all__ = ["CurateConfig", "curate_corpus"]

if __name__ == "__main__":
    print(curate_corpus(CurateConfig.from_yaml(sys.argv[1] if len(sys.argv) > 1 else "flows/corpus.yaml"))["markdown"])
