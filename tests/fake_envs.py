"""Envs the tests need that gymnasium lacks, registered on import. A script running in another process (a subprocess,
or A3C's spawned workers) makes them by the id "fake_envs:<name>", which imports this module there first (tests/ is on
the path of both)."""

import gymnasium as gym


class NanRewardEnv(gym.Wrapper):
    """An env whose reward turns NaN after `nan_after` steps of the env's life: a stand-in for a diverging run."""

    def __init__(self, env_id: str = "CartPole-v1", nan_after: int = 50):
        super().__init__(gym.make(env_id))
        self.steps, self.nan_after = 0, nan_after

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, (float("nan") if self.steps > self.nan_after else reward), terminated, truncated, info


class RaisingEnv(gym.Wrapper):
    """CartPole that raises after `raise_after` steps: a stand-in for a crashing worker."""

    def __init__(self, raise_after: int = 100):
        super().__init__(gym.make("CartPole-v1"))
        self.steps, self.raise_after = 0, raise_after

    def step(self, action):
        self.steps += 1
        if self.steps > self.raise_after:
            raise RuntimeError(f"the env broke after {self.raise_after} steps")
        return self.env.step(action)


class MultiDiscreteActionEnv(gym.Wrapper):
    """CartPole behind a MultiDiscrete([2, 2]) action space (the first component is used): an action space that is
    neither Discrete nor Box."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.action_space = gym.spaces.MultiDiscrete([2, 2])

    def step(self, action):
        return self.env.step(int(action[0]))


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
if "RaisingCartPole-v1" not in gym.registry:
    gym.register("RaisingCartPole-v1", entry_point=RaisingEnv, max_episode_steps=500)
if "MultiDiscreteCartPole-v1" not in gym.registry:
    gym.register("MultiDiscreteCartPole-v1", entry_point=MultiDiscreteActionEnv, max_episode_steps=500)
# FrozenLake without the slippery ice: every move goes where it points (mcts.py must reach the goal every time)
if "DeterministicFrozenLake-v1" not in gym.registry:
    gym.register(
        "DeterministicFrozenLake-v1",
        entry_point="gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
        kwargs={"is_slippery": False},
        max_episode_steps=100,
    )
