"""Command line: ``python -m purejaxrl_ppo COMMAND`` (also the ``purejaxrl-ppo`` script).

The commands are ``train``, ``render``, ``export``, ``compare``, ``sweep``, ``rlhf``, ``launch`` and ``check-env``
(``python -m purejaxrl_ppo --help`` lists every registered one; ``tests/cli/test_help.py`` checks
that this docstring names them and every module below).

* ``commands.py``   the parser of every subcommand, and ``train``, ``render`` and ``compare``
* ``check_env.py`` ``check-env``: does an environment follow the env protocol (``pjp.check_env``)
* ``export.py``     ``export``: a trained policy as one self-contained file (``pjp.load_run`` reads it)
* ``flags.py``      flags generated from the config fields' metadata, in ``--help`` sections
* ``presets.py``    per-task Brax defaults applied under the flags given
* ``reference.py``  the configuration reference (``docs/config.md``) from the same metadata
* ``sweep.py``      ``sweep``: a grid of numeric hyperparameters x seeds, durable like ``train``
* ``rlhf.py``       ``rlhf``: SFT, reward model and PPO/TRPO on a synthetic language
* ``launch`` is :mod:`purejaxrl_ppo.launch.processes`: several local processes of one jax job
"""

from purejaxrl_ppo.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
