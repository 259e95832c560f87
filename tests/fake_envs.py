"""Envs the tests need that gymnasium lacks, registered on import. A script running in another process (a subprocess,
or A3C's spawned workers) makes them by the id "fake_envs:<name>", which imports this module there first (tests/ is on
the path of both)."""

import gymnasium as gym
import minatar.gym
import numpy as np

if "MinAtar/Breakout-v1" not in gym.registry:  # MinAtar's ids (the smoke env of dqn_atari.py)
    minatar.gym.register_envs()


class NanRewardEnv(gym.Wrapper):
    """An env whose reward turns NaN after `nan_after` steps of the env's life: a stand-in for a diverging run."""

    def __init__(self, env_id: str = "CartPole-v1", nan_after: int = 50):
        super().__init__(gym.make(env_id))
        self.steps, self.nan_after = 0, nan_after

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, (float("nan") if self.steps > self.nan_after else reward), terminated, truncated, info


class NanObservationEnv(gym.Wrapper):
    """An env whose observations turn NaN after `nan_after` steps of the env's life: a diverging run for a script that
    learns from no reward (hac.py's rewards are its own goal tests)."""

    def __init__(self, env_id: str = "MountainCarContinuous-v0", nan_after: int = 300):
        super().__init__(gym.make(env_id))
        self.steps, self.nan_after = 0, nan_after

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return (obs * float("nan") if self.steps > self.nan_after else obs), reward, terminated, truncated, info


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


class NanRewardTupleEnv(gym.Wrapper):
    """A multi-agent env with a Tuple entry per agent (Level-Based Foraging) whose rewards turn NaN after `nan_after`
    steps: a stand-in for a diverging multi-agent run."""

    def __init__(self, env_id: str = "Foraging-8x8-2p-3f-v3", nan_after: int = 120):
        import lbforaging  # noqa: F401  (registers the Foraging-* ids)

        super().__init__(gym.make(env_id, disable_env_checker=True))
        self.steps, self.nan_after = 0, nan_after

    def step(self, action):
        obs, rewards, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps > self.nan_after:
            rewards = [float("nan")] * len(rewards)
        return obs, rewards, terminated, truncated, info


class TwoPendulums(gym.Env):
    """Two Pendulums side by side, one Tuple entry per agent with Box actions: a multi-agent env with continuous
    actions (which qmix.py cannot handle), rewards as a list."""

    def __init__(self):
        self.pendulums = [gym.make("Pendulum-v1").unwrapped for _ in range(2)]
        self.observation_space = gym.spaces.Tuple([p.observation_space for p in self.pendulums])
        self.action_space = gym.spaces.Tuple([p.action_space for p in self.pendulums])

    def reset(self, seed=None, options=None):
        seeds = [None, None] if seed is None else [seed, seed + 1]
        return tuple(p.reset(seed=s)[0] for p, s in zip(self.pendulums, seeds, strict=True)), {}

    def step(self, action):
        steps = [p.step(np.asarray(a)) for p, a in zip(self.pendulums, action, strict=True)]
        return tuple(s[0] for s in steps), [float(s[1]) for s in steps], False, False, {}


# NaN after the first episodes have been logged (Pendulum's episodes last 200 steps; Cliff Walking's are cut at 100;
# MinAtar Breakout's random ones last about 10 steps, uncut)
for _env_id, _nan_after, _max_steps in (
    ("CartPole-v1", 50, 500),
    ("Pendulum-v1", 300, 500),
    ("CliffWalking-v1", 250, 100),
    ("MinAtar/Breakout-v1", 300, None),
):
    if f"NanReward{_env_id}" not in gym.registry:
        gym.register(
            f"NanReward{_env_id}",
            entry_point=NanRewardEnv,
            kwargs={"env_id": _env_id, "nan_after": _nan_after},
            max_episode_steps=_max_steps,
        )
# Level-Based Foraging's episodes last at most 50 steps: NaN after the first two have been logged
if "NanRewardForaging-8x8-2p-3f-v3" not in gym.registry:
    gym.register("NanRewardForaging-8x8-2p-3f-v3", entry_point=NanRewardTupleEnv, max_episode_steps=50)
if "TwoPendulums-v0" not in gym.registry:
    gym.register("TwoPendulums-v0", entry_point=TwoPendulums, max_episode_steps=200)
# hac.py's smoke runs last at most 25 steps an episode: NaN after about a dozen have been logged
if "NanObservationMountainCarContinuous-v0" not in gym.registry:
    gym.register("NanObservationMountainCarContinuous-v0", entry_point=NanObservationEnv, max_episode_steps=999)
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
