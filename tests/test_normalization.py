"""Observation normalization and reward scaling (`RunningMeanStd`, `RewardScaler`), in every script that has them:
their math against numpy and a hand computation, that the statistics travel with the saved model and are frozen at
evaluation, and that a snapshot keeps them."""

import os

import numpy as np
import pytest
import torch
from helpers import load_algo, model_file, only_run_dir, run_dirs, smoke_args

NORMALIZERS = ["ppo_continuous", "ppo", "reinforce", "a2c", "a3c", "trpo"]
# the env each script's model is trained on, and its observation size (ppo.py takes only Discrete actions)
ENVS = {"ppo": ("LunarLander-v3", 8)}


@pytest.mark.parametrize("name", NORMALIZERS)
def test_running_mean_std_matches_numpy_over_all_batches(name):
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=3.0, scale=2.0, size=(n, 4)) for n in (1, 7, 64, 3)]
    rms = load_algo(name).RunningMeanStd((4,))
    for batch in batches:
        rms.update(batch)
    everything = np.concatenate(batches)
    # the initial pseudo-count of 1e-4 at mean 0, variance 1 shifts the estimates by about 1e-4 relative
    np.testing.assert_allclose(rms.mean, everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(rms.var, everything.var(axis=0), rtol=1e-4)
    normalized = rms.normalize(everything)
    np.testing.assert_allclose(normalized.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalized.std(axis=0), 1.0, atol=1e-4)
    assert rms.normalize(np.full(4, 1e6)).max() == 10.0  # clipped


@pytest.mark.parametrize("name", NORMALIZERS)
def test_reward_scaler_divides_by_the_std_of_the_discounted_return(name):
    # two envs, γ = 0.5, rewards 1 then 2 then 4; env 0's episode ends at the second step. By hand: the discounted
    # returns G are (1, 1), then (2.5, 2.5) (env 0 restarts after), then (4, 5.25); each reward is divided by the
    # standard deviation of every G seen so far (population, over all envs and steps)
    scaler = load_algo(name).RewardScaler(num_envs=2, gamma=0.5)
    seen, expected = [], []
    for reward, done, returns in (
        (np.array([1.0, 1.0]), np.array([False, False]), [1.0, 1.0]),
        (np.array([2.0, 2.0]), np.array([True, False]), [2.5, 2.5]),
        (np.array([4.0, 4.0]), np.array([False, False]), [4.0, 5.25]),
    ):
        seen += returns
        # the statistics start from a pseudo-count of 1e-4 at mean 0, variance 1: negligible here
        expected = np.clip(reward / np.sqrt(np.var(seen) + 1e-8), -10, 10)
        np.testing.assert_allclose(scaler(reward, done), expected, rtol=1e-3)
    np.testing.assert_allclose(scaler.returns, [4.0, 5.25])


@pytest.mark.parametrize("name", NORMALIZERS)
def test_the_saved_model_carries_the_statistics_and_replays_the_evaluation(name, tmp_path):
    module = load_algo(name)
    env_id, obs_dim = ENVS.get(name, ("Pendulum-v1", 3))
    args = smoke_args(name, tmp_path / "train", env_id=env_id, save_model=True, norm_obs=True, norm_reward=True)
    summary = module.train(args)
    saved = model_file(only_run_dir(tmp_path / "train"), name)
    model = torch.load(saved, weights_only=True)
    assert model["obs_mean"].shape == (obs_dim,) and model["obs_var"].shape == (obs_dim,)
    assert (model["obs_var"] != 1.0).all() and (model["obs_mean"] != 0.0).all()  # updated from the env's observations
    # evaluated again from the file: the same returns, so the statistics were frozen and used as saved
    replay = module.train(smoke_args(name, tmp_path / "eval", env_id=env_id, checkpoint=saved))
    assert replay["eval_return_mean"] == summary["eval_return_mean"]
    assert len(run_dirs(tmp_path / "eval")) == 1
    without = dict(model)
    without.pop("obs_mean"), without.pop("obs_var")
    torch.save(without, os.path.join(tmp_path, "without.pt"))
    other = module.train(smoke_args(name, tmp_path / "raw", env_id=env_id, checkpoint=str(tmp_path / "without.pt")))
    assert other["eval_return_mean"] != summary["eval_return_mean"]  # the statistics matter to the policy
