"""The device side: everything that runs inside the compiled training program.

Pure, jittable functions and pytrees only; nothing here imports the host-side
packages (:mod:`purejaxrl_ppo.launch`, :mod:`purejaxrl_ppo.runs`,
:mod:`purejaxrl_ppo.analysis`, :mod:`purejaxrl_ppo.cli`), which
``tests/test_architecture.py`` checks.

* ``config.py``      configuration fields with their metadata
* ``types.py``       the data of one iteration (Transition, UpdateBatch, TrainState)
* ``envs/``          one Env interface; gymnax and Brax adapters; ``make_env(name)``
* ``networks/``      the Network protocol and its implementations, chosen by ``config.policy``
* ``rollout.py``, ``advantages.py``, ``normalization.py``, ``evaluate.py``
* ``iteration.py``   the default iteration: rollout → advantages → update
* ``algos/<name>/``  each algorithm: config, loss, update; registers itself
* ``loop.py``        ``make_train`` / ``train_updates``: the one ``lax.scan``
"""
