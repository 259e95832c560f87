"""algos/ddpg.py, algos/td3.py, algos/sac.py: the squashed-Gaussian log-probability, Polyak averaging, the target's
minimum over twin critics, target policy smoothing, the batched critics, the replay buffer, and learning tests."""

import numpy as np
import pytest
import torch
from helpers import CHI_SQUARE_9_DOF_QUANTILE_999, assert_learns, chi_square_against_uniform, load_algo

ddpg, td3, sac = load_algo("ddpg"), load_algo("td3"), load_algo("sac")
MODULES = [ddpg, td3, sac]
module_ids = pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.split(".")[-1])


def test_squashed_gaussian_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    mean, log_std = torch.randn(64, 3), torch.rand(64, 3) - 1.0
    scale, bias = torch.tensor([2.0, 0.5, 1.0]), torch.tensor([0.0, 0.5, -1.0])
    u = mean + log_std.exp() * torch.randn(64, 3)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()),
        [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(bias, scale)],
    )
    actions = torch.tanh(u) * scale + bias
    expected = reference.log_prob(actions).sum(-1)
    torch.testing.assert_close(sac.squashed_gaussian_log_prob(u, mean, log_std, scale), expected, rtol=1e-4, atol=1e-4)


def test_squashed_gaussian_log_prob_by_numerical_change_of_variables():
    # one dimension: the density of a = 2 tanh(u) is the density of u divided by |da/du|, da/du from finite differences
    mean, log_std, scale = torch.tensor([[0.3]]), torch.tensor([[-0.2]]), torch.tensor([2.0])
    for u_value in (-1.5, 0.0, 0.7, 2.0):
        u = torch.tensor([[u_value]], dtype=torch.float64)
        h = 1e-6
        da_du = (2 * torch.tanh(u + h) - 2 * torch.tanh(u - h)) / (2 * h)
        normal = torch.distributions.Normal(mean.double(), log_std.double().exp())
        expected = normal.log_prob(u).sum() - torch.log(da_du).sum()
        got = sac.squashed_gaussian_log_prob(u, mean.double(), log_std.double(), scale.double())
        assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_sac_actor_samples_within_bounds_with_their_log_prob():
    torch.manual_seed(0)
    actor = sac.Actor(obs_dim=3, act_dim=2, action_low=np.array([-1.0, 0.0]), action_high=np.array([3.0, 1.0]))
    actions, log_prob = actor.sample(torch.randn(1000, 3))
    assert (actions[:, 0] >= -1).all() and (actions[:, 0] <= 3).all()
    assert (actions[:, 1] >= 0).all() and (actions[:, 1] <= 1).all()
    assert log_prob.shape == (1000,) and torch.isfinite(log_prob).all()
    deterministic = actor.act_deterministic(torch.zeros(1, 3))
    mean, _ = actor(torch.zeros(1, 3))
    torch.testing.assert_close(deterministic, torch.tanh(mean) * actor.action_scale + actor.action_bias)


@module_ids
def test_soft_update_moves_each_parameter_by_tau_of_the_gap(module):
    torch.manual_seed(0)
    target, source = module.Critics(3, 2, n=2), module.Critics(3, 2, n=2)
    before = [p.detach().clone() for p in target.parameters()]
    module.soft_update(target, source, tau=0.25)
    for old, new, src in zip(before, target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(new - old, 0.25 * (src - old))


@module_ids
def test_td_target_takes_the_minimum_of_the_critics_and_bootstraps_truncations(module):
    rewards = torch.tensor([1.0, 1.0, 1.0])
    next_q_values = torch.tensor([[4.0, 10.0, 6.0], [5.0, 2.0, 6.0]])  # (critics, batch)
    # the third transition terminated; the others, truncated or not, did not
    terminations = torch.tensor([0.0, 0.0, 1.0])
    target = module.td_target(rewards, next_q_values, terminations, gamma=0.5)
    assert target.tolist() == pytest.approx([1 + 0.5 * 4, 1 + 0.5 * 2, 1.0])
    # one critic (DDPG): its own estimate
    single = module.td_target(rewards, next_q_values[:1], terminations, gamma=0.5)
    assert single.tolist() == pytest.approx([3.0, 6.0, 1.0])


def test_td3_target_policy_smoothing_is_clipped_and_stays_in_bounds():
    torch.manual_seed(0)
    actor = td3.Actor(obs_dim=3, act_dim=2, action_low=np.array([-2.0, 0.0]), action_high=np.array([2.0, 1.0]))
    obs = torch.randn(5000, 3)
    smoothed = td3.smoothed_target_actions(actor, obs, policy_noise=10.0, noise_clip=0.5)
    deviation = (smoothed - actor(obs)).abs()
    assert (deviation <= 0.5 * actor.action_scale + 1e-6).all()  # the noise is clipped to ±c · half-range
    assert (deviation.max(dim=0).values > 0.4 * actor.action_scale).all()  # and it is there
    assert (smoothed[:, 0] >= -2).all() and (smoothed[:, 0] <= 2).all()
    assert (smoothed[:, 1] >= 0).all() and (smoothed[:, 1] <= 1).all()


@module_ids
def test_batched_critics_equal_separate_networks(module):
    torch.manual_seed(0)
    critics = module.Critics(obs_dim=3, act_dim=2, n=2)
    obs, actions = torch.randn(16, 3), torch.randn(16, 2)
    q_values = critics(obs, actions)
    assert q_values.shape == (2, 16)
    x = torch.cat([obs, actions], dim=-1)
    layers = [critics.net[0], critics.net[2], critics.net[4]]
    for i in range(2):
        h = x
        for depth, layer in enumerate(layers):
            h = h @ layer.weight[i] + layer.bias[i]
            h = torch.relu(h) if depth < 2 else h
        torch.testing.assert_close(q_values[i], h.squeeze(-1))
    # the two critics are initialized independently
    assert not torch.allclose(q_values[0], q_values[1])


def test_td3_first_critic_alone_equals_the_first_of_both_in_value_and_action_gradient():
    # the actor's loss evaluates Q_1 alone (the paper's ∇_a Q_θ1); it must be what the batched forward gives for Q_1
    torch.manual_seed(0)
    critics = td3.Critics(obs_dim=3, act_dim=2, n=2)
    obs = torch.randn(16, 3)
    actions_both = torch.randn(16, 2, requires_grad=True)
    actions_first = actions_both.detach().clone().requires_grad_(True)
    q_both, q_first = critics(obs, actions_both), critics(obs, actions_first, first=1)
    assert q_first.shape == (1, 16)
    torch.testing.assert_close(q_first[0], q_both[0])
    q_both[0].sum().backward()
    q_first[0].sum().backward()
    torch.testing.assert_close(actions_first.grad, actions_both.grad)


def _transition(value: float):
    return (
        np.full((1, 3), value, dtype=np.float32),
        np.full((1, 3), value + 0.5, dtype=np.float32),
        np.full((1, 2), -value, dtype=np.float32),
        np.array([value * 10]),
        np.array([value % 2 == 0]),
    )


@module_ids
def test_replay_buffer_returns_what_was_stored_and_wraps(module):
    rb = module.ReplayBuffer(capacity=5, obs_dim=3, act_dim=2, device=torch.device("cpu"), seed=0)
    for value in range(7):
        rb.add(*_transition(float(value)))
    assert rb.size == 5 and rb.pos == 2
    assert sorted(rb.obs[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]  # the two oldest were overwritten
    obs, actions, rewards, next_obs, terminations = rb.sample(1000)
    values = obs[:, 0]
    assert set(values.tolist()) == {2.0, 3.0, 4.0, 5.0, 6.0}
    torch.testing.assert_close(next_obs[:, 2], values + 0.5)
    torch.testing.assert_close(actions[:, 1], -values)
    torch.testing.assert_close(rewards, values * 10)
    torch.testing.assert_close(terminations, (values % 2 == 0).float())


@module_ids
def test_replay_buffer_samples_uniformly(module):
    rb = module.ReplayBuffer(capacity=10, obs_dim=3, act_dim=2, device=torch.device("cpu"), seed=123)
    for value in range(10):
        rb.add(*_transition(float(value)))
    sampled_rows = rb.sample(100_000)[0][:, 0].long().numpy()
    assert chi_square_against_uniform(sampled_rows, 10) < CHI_SQUARE_9_DOF_QUANTILE_999


@pytest.mark.learning
@module_ids
def test_learns_pendulum_in_20k_steps(module, tmp_path):
    # Threshold from the issue: ≥ −250 (random policy ≈ −1200; the RL Baselines3 Zoo's tuned agents −150 to −175 at
    # 20k steps) within 20k env steps, with the default hyperparameters. Five seeds (1-5) of each before settling,
    # final evaluation means: ddpg −136.1, −126.4, −128.9, −121.9, −133.2; td3 −135.3, −122.1, −134.1, −122.2,
    # −133.1; sac −135.9, −120.5, −130.8, −118.3, −128.7.
    assert_learns(module, tmp_path, 20_000, -250)
