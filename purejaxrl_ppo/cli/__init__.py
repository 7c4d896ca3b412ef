"""Command line: ``python -m purejaxrl_ppo train|compare|render`` (also the ``purejaxrl-ppo`` script).

* ``commands.py``  the subcommands
* ``flags.py``     flags generated from the config fields' metadata
* ``presets.py``   per-task Brax defaults applied under the flags given
"""

from purejaxrl_ppo.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
