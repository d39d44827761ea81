"""What the tests share, each written once; test modules import from here, never from conftest.

- :mod:`tests.support.paths`: the repository, the test data, the demo and dispersion scripts.
- :mod:`tests.support.points`: the grids and the perturbation the tests sweep.
- :mod:`tests.support.sweepdir`: reading a sweep directory as the tests do (records, executions).
- :mod:`tests.support.waiting`: polling for something, in the test or in a watcher thread.
- :mod:`tests.support.faults`: killing workers and sweep processes mid-sweep.
- :mod:`tests.support.prefect_api`: what the Prefect server recorded (artifacts, logs, runs).
- :mod:`tests.support.reference`: gmat-sweep 0.6.0 itself, run in a subprocess.
- :mod:`tests.support.work_pool`: a server with a worker, and the waits on its flow runs.
- :mod:`tests.support.hooks`: postprocess hooks the sweeps name (run in the workers).
- ``sweep_main`` and ``reference_main``: the subprocesses the tests launch (``python -m``).

The fixtures (the session's Prefect server, the shared sweeps) are in ``tests/conftest.py``.
"""
