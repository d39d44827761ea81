"""The platform tests share one ``prefect server start`` with its deployments and workers.

The process worker (tests/support/work_pool.py) serves test_platform.py; test_docker.py
adds a docker worker to the same server. The fixture lives as long as this package's
tests: under pytest-xdist they are one work unit (tests/conftest.py groups them), so
the server stops as soon as they are done.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.work_pool import WorkerPlatform, process_platform


@pytest.fixture(scope="package")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPlatform]:
    """A server, ``prefect deploy --all``, the engine limit, blocks and a confined process
    worker."""
    with process_platform(tmp_path_factory.mktemp("platform")) as platform:
        yield platform
