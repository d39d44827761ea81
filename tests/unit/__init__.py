"""Unit tests by module for the Prefect-free layers (core, engine, study): no server, no engine."""
