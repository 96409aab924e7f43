"""One local Ray instance for every test in this folder (starting one costs ~5 s; a test run that starts one per
test would not fit the CI budget). Tests are skipped, saying so, only where Ray cannot be imported."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rlvr[ray]'); distributed tests skipped")

RAY_CPUS = 8  # logical CPUs of the test instance: actors ask for fractions, this machine has 2 cores


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The GCS address of the shared local instance; drivers in subprocesses join it with distributed.address."""
    from rlvr.distributed.cluster import WORKER_ENV

    if not ray.is_initialized():
        ray.init(num_cpus=RAY_CPUS, include_dashboard=False, runtime_env={"env_vars": WORKER_ENV})
    address = ray.get_runtime_context().gcs_address
    yield address
    ray.shutdown()
