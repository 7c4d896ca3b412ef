"""The host side that launches programs on devices.

* ``layout.py``   :class:`SeedLayout`: seeds padded, sharded over a mesh, run in blocks
* ``programs.py`` the one compile cache: every program below is built once per config and layout
* ``seeds.py``    :func:`train_seeds`: whole runs of many seeds
* ``chunked.py``  :func:`train_seeds_chunked`: the same runs in chunks, the host acting between them
* ``sweep.py``    :func:`sweep`: hyperparameter grids × seeds in one program
* ``distributed.py`` several processes, one job: ``jax.distributed`` set-up, process 0's broadcasts,
  which process died
* ``processes.py`` ``python -m purejaxrl_ppo launch``: N local processes of one job, supervised
* ``rlhf.py``     the RLHF programs: keys, RL groups as chunked programs, the evaluator
"""
