"""``python -m purejaxrl_ppo``: see :mod:`purejaxrl_ppo.cli`."""

import sys

from purejaxrl_ppo.cli import main

sys.exit(main())
