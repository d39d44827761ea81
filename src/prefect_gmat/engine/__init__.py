"""The engine layer: find GMAT, keep warm engine processes, run one GMAT script per job.

``install`` finds (or builds the shim root for) an engine; ``pool`` keeps
worker processes forked from one template (``worker``), each running jobs
through ``run``; ``carry`` brings a run's files home from a machine that
cannot write the sweep directory. Jobs and outcomes are ``core.records``.
"""
