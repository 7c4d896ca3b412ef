"""The one durable-run driver and its clients: every run that lives in a run directory goes through here.

* ``run.py``      the driver: the run directory and its lock, chunked stages with checkpoints, resume and
  ``--restart``, logs, divergence, one-shot stages with manifests, the atomic finish (``complete.json``)
* ``control.py``  :func:`train_durable`: ``train`` and ``sweep`` (process groups included)
* ``outputs.py``  a finished ``train`` run's and sweep's files (:func:`save_run`, :func:`save_sweep`)
* ``rlhf.py``     :func:`run_rlhf`: ``rlhf``'s SFT, reward-model and RL stages

Layering (``tests/test_architecture.py``): ``core`` ← ``analysis`` (numerics, plots) ← ``launch`` and ``runs``
(neither imports the other) ← ``driver`` ← ``cli``; nothing below imports up.
"""

from purejaxrl_ppo.driver.control import CollapseWarning, train_durable
from purejaxrl_ppo.driver.outputs import save_run, save_sweep
from purejaxrl_ppo.driver.rlhf import load_rlhf_run, run_rlhf

__all__ = ["CollapseWarning", "load_rlhf_run", "run_rlhf", "save_run", "save_sweep", "train_durable"]
