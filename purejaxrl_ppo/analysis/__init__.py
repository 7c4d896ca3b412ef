"""The host side that reads results: statistics across seeds (one IQM, bootstrap CIs), plots, rendering.

* ``stats.py``  final returns, the interquartile mean, summaries across seeds
* ``study.py``  rliable statistics for comparing algorithms across environments
* ``plots.py``  learning-curve figures
* ``render.py`` a trained policy as a Brax HTML viewer or a gymnax GIF
"""
