"""The leaves: the records that cross the engine boundary, and the sweep directory's names.

Nothing here imports anything else of the package; everything else may import these.
"""
