"""``python -m influence_stage.cli``: the same as the ``influence-stage`` console script."""

import sys

from influence_stage.cli.main import main

sys.exit(main())
