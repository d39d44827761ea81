"""The Prefect-aware runtime under the flows: events, UI artifacts and plots, concurrency
limits, the temporary server, dask workers' logs, flow-run naming, and the terminal's
quiet and progress."""
