"""The sweep-data layer: what a sweep is, what it writes, and how its points are planned.

``request`` (one sweep request: its points and knobs), ``spec`` and ``designs``
(the points), ``convergence`` (a Monte Carlo study that stops itself), ``sweepdir``
(the directory: lock, plan, resume), ``manifest``, ``frame``, ``bundle``,
``batching``, ``validation`` (checks against the engine before any run),
``confine`` (what a deployment's parameters may touch) and ``plan`` (the cost).
"""
