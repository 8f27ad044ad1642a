"""Command line: ``influence-stage clean | serve | server | report | versions | curate | cache | export |
import-reviews``.

One entry point (``influence_stage.cli.main.main``), one module per subcommand: each module
adds its parser (``add_parser``) and runs it (``run``). Exit codes: 0 published (or done); 2 bad
input or configuration; 3 a validation gate failed (nothing published); 1 anything else. Errors
print one line, ``error: <reason>``, on stderr.
"""

from influence_stage.cli.clean import demo_config, flow_config, preflight
from influence_stage.cli.main import _parser, main

__all__ = ["_parser", "demo_config", "flow_config", "main", "preflight"]
