"""The host side that records runs: run directories, checkpoints, logs, policy files, provenance.

* ``options.py``      :class:`RunOptions` (seeds, chunking, checkpoints, logging)
* ``run_files.py``    a run's config and options as YAML/TOML
* ``rundir.py``       the run directory's layout and metadata
* ``checkpoint.py``   orbax checkpoints, verified on restore
* ``sinks.py``        CSV, JSONL, TensorBoard, W&B
* ``policy_files.py`` a trained policy on disk
* ``provenance.py``   machine and package versions
* ``durable.py``      :func:`train_durable`: a chunked run with all of the above, resumable
"""
