"""Test-session setup: one torch thread per worker, seeded RNGs, and the NaN-reward envs of the NaN tests."""

import gymnasium as gym
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


class NanRewardEnv(gym.Wrapper):
    """An env whose reward turns NaN after `nan_after` steps of the env's life: a stand-in for a diverging run."""

    def __init__(self, env_id: str = "CartPole-v1", nan_after: int = 50):
        super().__init__(gym.make(env_id))
        self.steps, self.nan_after = 0, nan_after

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, (float("nan") if self.steps > self.nan_after else reward), terminated, truncated, info


# NaN after the first episodes have been logged (Pendulum's episodes last 200 steps; Cliff Walking's are cut at 100)
for _env_id, _nan_after, _max_steps in (
    ("CartPole-v1", 50, 500),
    ("Pendulum-v1", 300, 500),
    ("CliffWalking-v1", 250, 100),
):
    if f"NanReward{_env_id}" not in gym.registry:
        gym.register(
            f"NanReward{_env_id}",
            entry_point=NanRewardEnv,
            kwargs={"env_id": _env_id, "nan_after": _nan_after},
            max_episode_steps=_max_steps,
        )


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global RNG state."""
    np.random.seed(0)
    torch.manual_seed(0)
