"""Shared fixtures: small configs that train in well under a second."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

import pytest
import torch

import regopt.optim.kernels as kernels
from regopt.lab.config import RunConfig, validate
from tests.browser import browser  # noqa: F401  (the session-wide headless Chromium, for every test)
from tests.postgres import postgres_url  # noqa: F401  (a throwaway PostgreSQL server, for the shared-study tests)

# pytest runs one process per core (-n 2): a second intra-op thread per process only oversubscribes the cores,
# and on these tiny models two threads contending can be 10x slower than one. REGOPT_TEST_THREADS=2 runs the
# suite with two intra-op threads per process, to show that no test depends on the thread count.
torch.set_num_threads(int(os.environ.get("REGOPT_TEST_THREADS", "1")))

# A fresh inductor cache for the session (shared by its xdist workers, which inherit the environment): torch's
# on-disk cache does not key kernels by ATEN_CPU_CAPABILITY, so a suite run at another capability would be served
# kernels an earlier run built for this one (tests/optim/test_compile_check.py shows what that computes).
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    _inductor_cache = tempfile.mkdtemp(prefix="regopt-tests-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _inductor_cache
    atexit.register(shutil.rmtree, _inductor_cache, ignore_errors=True)


def small_raw(**sections: Any) -> dict[str, Any]:
    """A tiny moons/MLP config as raw TOML data, with sections overridden by keyword."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "data": {"name": "moons", "num_samples": 400, "noise": 0.1},
        "model": {"name": "mlp", "widths": [16]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "train": {"epochs": 3, "batch_size": 32, "evaluate_test": True},
    }
    for key, value in sections.items():
        raw[key] = value
    return raw


@pytest.fixture
def small_config() -> RunConfig:
    return validate(small_raw())


@pytest.fixture(autouse=True)
def _restore_torch_rng():
    """Tests seed torch's global RNG; keep one test's seeding from leaking into the next."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)


@pytest.fixture(autouse=True)
def _forget_compile_failures():
    """A test that makes compiling fail on purpose must not turn compiling off for the tests after it (the
    failure is remembered process-wide, as it should be in a training run)."""
    failure = kernels._COMPILE_FAILURE
    yield
    kernels._COMPILE_FAILURE = failure
