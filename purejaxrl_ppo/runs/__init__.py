"""The host side that records runs: run directories, checkpoints, logs, policy files, provenance (files only:
what drives a run through them is :mod:`purejaxrl_ppo.driver`).

* ``options.py``      :class:`RunOptions` (seeds, chunking, checkpoints, logging)
* ``run_files.py``    a run's config and options as YAML/TOML
* ``rundir.py``       the run directory's layout and metadata
* ``checkpoint.py``   orbax checkpoints, verified on restore
* ``sinks.py``        CSV, JSONL, TensorBoard, W&B
* ``policy_files.py`` a trained policy on disk
* ``provenance.py``   machine and package versions
* ``sweep_files.py``  a sweep's run file (its grid) and per-point logs
"""
