"""Development tools kept out of the runtime package: the container image builder and a
local Prefect server harness for tests, benchmarks and screenshots."""
