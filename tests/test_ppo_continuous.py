"""algos/ppo_continuous.py: the Gaussian policy's math, the running normalization statistics, that they travel with
the saved model, and a learning test. GAE and truncation handling are tested in test_ppo.py for both scripts."""

import os

import numpy as np
import pytest
import torch
from helpers import assert_learns, load_algo, only_run_dir, smoke_args

ppo_continuous = load_algo("ppo_continuous")


def test_gaussian_log_prob_and_entropy_match_torch_distributions():
    torch.manual_seed(0)
    mean, log_std, x = torch.randn(32, 3), torch.randn(32, 3) * 0.5, torch.randn(32, 3) * 2
    reference = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(ppo_continuous.gaussian_log_prob(x, mean, log_std), reference.log_prob(x).sum(-1))
    torch.testing.assert_close(ppo_continuous.gaussian_entropy(log_std), reference.entropy().sum(-1))


def test_agent_log_prob_is_that_of_its_own_samples():
    torch.manual_seed(0)
    agent = ppo_continuous.Agent(obs_dim=3, act_dim=2)
    with torch.no_grad():
        agent.actor_logstd.fill_(-0.5)
        obs = torch.randn(50_000, 3)
        actions, log_prob, _, _ = agent.get_action_and_value(obs)
        mean = agent.actor_mean(obs)
    reference = torch.distributions.Normal(mean, torch.full_like(mean, np.exp(-0.5)))
    torch.testing.assert_close(log_prob, reference.log_prob(actions).sum(-1))
    standardized = (actions - mean) / np.exp(-0.5)
    assert standardized.mean().abs() < 0.01 and (standardized.std() - 1).abs() < 0.01


def test_running_mean_std_matches_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=3.0, scale=2.0, size=(n, 4)) for n in (1, 7, 64, 3)]
    rms = ppo_continuous.RunningMeanStd((4,))
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


def test_saved_model_carries_the_observation_statistics(tmp_path):
    ppo_continuous.train(smoke_args("ppo_continuous", tmp_path, save_model=True))
    model = torch.load(os.path.join(only_run_dir(tmp_path), "ppo_continuous.pt"))
    assert model["obs_mean"].shape == (3,) and model["obs_var"].shape == (3,)
    assert (model["obs_var"] != 1.0).all() and (model["obs_mean"] != 0.0).all()  # updated from Pendulum's observations


@pytest.mark.learning
def test_ppo_continuous_learns_pendulum(tmp_path):
    # Threshold from the issue: ≥ −400 (random policy ≈ −1200; good policies −150 to −200) within 200k env steps, with
    # the default hyperparameters. Five seeds of `python algos/ppo_continuous.py --seed N` (200k steps) before
    # settling: final evaluation means −172.5, −158.5, −171.4, −156.9, −163.0 for seeds 1-5. With the value loss
    # clipped (CleanRL's default) seed 2 reached only −586 (the others −170, −172, −157, −162).
    assert_learns(ppo_continuous, tmp_path, 200_000, -400)
