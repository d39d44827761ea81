"""The sweep-data layer: what a sweep is, what it writes, and how its points are planned.

``request`` (one sweep request: its points and knobs), ``spec`` and ``designs``
(the points), ``sweepdir`` (the directory: lock, plan, resume), ``manifest``,
``frame``, ``bundle``, ``batching`` and ``validation`` (checks against the
engine before any run).
"""
