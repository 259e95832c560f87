"""Test-session setup: one torch thread per worker, seeded RNGs, and the fake envs (NaN rewards, a crashing env, an
unsupported action space) of tests/fake_envs.py."""

import fake_envs  # noqa: F401  (registers the fake envs)
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global RNG state."""
    np.random.seed(0)
    torch.manual_seed(0)
