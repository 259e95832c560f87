"""algos/ddpg.py, algos/td3.py, algos/sac.py: the squashed-Gaussian log-probability, Polyak averaging, the TD
target, the critics' and the actors' losses and SAC's temperature loss against hand computations, target policy
smoothing, the batched critics, the replay buffer, the functions the three files share, and learning tests."""

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import (
    assert_learns,
    load_algo,
    only_run_dir,
    read_scalars,
    smoke_args,
)

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
def test_update_target_moves_each_parameter_by_tau_of_the_gap(module):
    torch.manual_seed(0)
    target, source = (
        module.Actor(3, 2, np.array([-1.0, 0.0]), np.array([1.0, 2.0])),
        module.Actor(3, 2, [-1, 0], [1, 2]),
    )
    before = [p.detach().clone() for p in target.parameters()]
    module.update_target(target, source, tau=0.25)
    for old, new, src in zip(before, target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(new - old, 0.25 * (src - old))


@module_ids
def test_td_target_bootstraps_truncations_and_stops_at_terminations(module):
    # the value of the next state comes in reduced (over the critics, as dqn.py's comes in maximized over actions)
    rewards, next_value = torch.tensor([1.0, 1.0, 2.0]), torch.tensor([4.0, -2.0, 6.0])
    terminations = torch.tensor(
        [0.0, 0.0, 1.0]
    )  # the third transition terminated; the others, truncated or not, did not
    target = module.td_target(rewards, next_value, terminations, gamma=0.5)
    assert target.tolist() == pytest.approx([1 + 0.5 * 4, 1 - 0.5 * 2, 2.0])


# Stand-ins for the networks, simple enough to compute the losses by hand: actions are one-dimensional, the actor's
# action (and a sample's) is k·s_0, a sample's log-probability s_1; the critics are Q_1(s, a) = w (s_0 + a) and
# Q_2(s, a) = w (3a − 5). k and w are parameters, so that the tests can see where gradients flow.
class StubActor(nn.Module):
    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.ones(()))
        self.register_buffer("action_scale", torch.tensor([10.0]))  # bounds ±10, for TD3's target smoothing
        self.register_buffer("action_bias", torch.tensor([0.0]))

    def forward(self, obs):
        return self.k * obs[:, :1]

    def sample(self, obs):
        return self(obs), obs[:, 1]


class StubCritics(nn.Module):
    def __init__(self, n: int = 2):
        super().__init__()
        self.n, self.w = n, nn.Parameter(torch.ones(()))

    def forward(self, obs, actions, first=None):
        q = self.w * torch.stack([obs[:, 0] + actions[:, 0], 3 * actions[:, 0] - 5])
        return q[0] if self.n == 1 else q[: first or self.n]


# s = (s_0, s_1, unused); a, r, s', terminated. The second transition terminated.
BATCH = (
    torch.tensor([[1.0, 0.3, 0.0], [2.0, -0.2, 0.0]]),
    torch.tensor([[0.5], [1.0]]),
    torch.tensor([1.0, 2.0]),
    torch.tensor([[3.0, 0.5, 0.0], [4.0, -1.0, 0.0]]),
    torch.tensor([0.0, 1.0]),
)


def test_ddpg_critic_loss_by_hand():
    critic, target_critic, target_actor = StubCritics(n=1), StubCritics(n=1), StubActor()
    loss, q_values = ddpg.critic_loss(critic, target_critic, target_actor, BATCH, gamma=0.5)
    # μ'(s') = (3, 4), Q'(s', μ'(s')) = (6, 8), y = (1 + 0.5 · 6, 2) = (4, 2); Q(s, a) = (1.5, 3)
    assert q_values.tolist() == pytest.approx([1.5, 3.0])
    assert loss.item() == pytest.approx(((1.5 - 4) ** 2 + (3 - 2) ** 2) / 2)
    loss.backward()
    assert critic.w.grad is not None and target_critic.w.grad is None and target_actor.k.grad is None


def test_td3_critic_loss_takes_the_smaller_target_critic_by_hand():
    critics, target_critics, target_actor = StubCritics(), StubCritics(), StubActor()
    loss, q_values = td3.critic_loss(
        critics, target_critics, target_actor, BATCH, 0.5, policy_noise=0.0, noise_clip=0.5
    )
    # ã = μ'(s') = (3, 4) without noise; Q'_1 = (6, 8), Q'_2 = (4, 7): y = (1 + 0.5 · 4, 2) = (3, 2)
    # Q_1(s, a) = (1.5, 3), Q_2(s, a) = (−3.5, −2): the loss is the sum of the two critics' mean squared errors
    assert q_values.tolist() == [pytest.approx([1.5, 3.0]), pytest.approx([-3.5, -2.0])]
    expected = ((1.5 - 3) ** 2 + (3 - 2) ** 2) / 2 + ((-3.5 - 3) ** 2 + (-2 - 2) ** 2) / 2
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert critics.w.grad is not None and target_critics.w.grad is None and target_actor.k.grad is None


def test_sac_critic_loss_uses_the_soft_value_of_the_smaller_target_critic_by_hand():
    critics, target_critics, actor = StubCritics(), StubCritics(), StubActor()
    loss, q_values = sac.critic_loss(critics, target_critics, actor, BATCH, 0.5, alpha=torch.tensor(0.2))
    # a' = (3, 4) with log π(a'|s') = (0.5, −1); V' = min(Q'_1, Q'_2) − α log π = (4 − 0.1, 7 + 0.2);
    # y = (1 + 0.5 · 3.9, 2) = (2.95, 2)
    expected = ((1.5 - 2.95) ** 2 + (3 - 2) ** 2) / 2 + ((-3.5 - 2.95) ** 2 + (-2 - 2) ** 2) / 2
    assert loss.item() == pytest.approx(expected)
    assert q_values.shape == (2, 2)
    loss.backward()
    assert critics.w.grad is not None and target_critics.w.grad is None and actor.k.grad is None


def test_ddpg_and_td3_actor_losses_by_hand():
    # μ(s) = (1, 2); DDPG: −mean Q(s, μ(s)) = −mean(2, 4) = −3; TD3: Q_1 alone, the same (min(Q_1, Q_2) would give
    # −mean(−2, 1) = −0.5); both gradients in k: −mean(∂Q_1/∂a · s_0) = −1.5 (through Q_2 it would be −4.5)
    for module, critics in ((ddpg, StubCritics(n=1)), (td3, StubCritics())):
        actor = StubActor()
        loss = module.actor_loss(actor, critics, BATCH[0])
        assert loss.item() == pytest.approx(-3.0)
        loss.backward()
        assert actor.k.grad.item() == pytest.approx(-1.5)


def test_sac_actor_loss_by_hand():
    actor, critics = StubActor(), StubCritics()
    loss, log_prob = sac.actor_loss(actor, critics, BATCH[0], alpha=torch.tensor(0.2))
    # a = (1, 2), log π = (0.3, −0.2); min(Q_1, Q_2) = min((2, 4), (−2, 1)) = (−2, 1);
    # mean(α log π − min Q) = mean(0.06 + 2, −0.04 − 1) = 0.51; gradient in k through Q_2: −mean(3 s_0) = −4.5
    assert loss.item() == pytest.approx(0.51)
    assert log_prob.tolist() == pytest.approx([0.3, -0.2])
    loss.backward()
    assert actor.k.grad.item() == pytest.approx(-4.5)


def test_sac_alpha_loss_by_hand():
    # J(α) = −α (mean log π + H̄), written in log α: at α = 0.5, mean log π = 0.5, H̄ = −1: −0.5 · (0.5 − 1) = 0.25, and
    # its derivative in log α is the same −α (mean log π + H̄) = 0.25
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    log_prob = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    loss = sac.alpha_loss(log_alpha, log_prob, target_entropy=-1.0)
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert log_alpha.grad.item() == pytest.approx(0.25)
    assert log_prob.grad is None  # the temperature's loss does not train the actor


@pytest.mark.parametrize("mean_log_prob,alpha_rises", [(2.0, True), (0.5, False)], ids=["below", "above"])
def test_sac_alpha_rises_when_the_entropy_is_below_the_target(mean_log_prob, alpha_rises):
    # the entropy estimate −mean log π is −2 (below the target −1) or −0.5 (above it); one gradient step on α
    log_alpha = torch.tensor(math.log(0.2), requires_grad=True)
    optimizer = torch.optim.SGD([log_alpha], lr=0.1)
    sac.alpha_loss(log_alpha, torch.tensor([mean_log_prob - 1, mean_log_prob + 1]), target_entropy=-1.0).backward()
    optimizer.step()
    assert (log_alpha.exp().item() > 0.2) == alpha_rises


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


def test_ddpg_critic_is_one_q_network():
    critic = ddpg.Critic(obs_dim=3, act_dim=2)
    assert critic(torch.randn(16, 3), torch.randn(16, 2)).shape == (16,)
    assert all(isinstance(layer, (nn.Linear, nn.ReLU)) for layer in critic.net)


@pytest.mark.parametrize("module", [td3, sac], ids=["td3", "sac"])
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


def test_the_three_files_share_their_buffer_target_and_polyak_averaging():
    # one replay buffer design, dqn.py's with float actions: the same writes and samples; one TD target and one target
    # update in the three files
    dqn = load_algo("dqn")
    for name in ("add", "sample"):
        assert {inspect.getsource(getattr(m.ReplayBuffer, name)) for m in (dqn, *MODULES)} == {
            inspect.getsource(getattr(dqn.ReplayBuffer, name))
        }
    for name in ("td_target", "update_target", "true_next_obs"):
        assert len({inspect.getsource(getattr(m, name)) for m in MODULES}) == 1, name
    for name in ("critic_loss", "actor_loss", "update_target", "td_target"):
        assert all(callable(getattr(m, name, None)) for m in MODULES), name


def test_sac_anneal_lr_decays_its_three_rates_linearly_over_the_budget(tmp_path, monkeypatch):
    optimizers = []

    class Recorded(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimizers.append(self)

    monkeypatch.setattr(sac.torch.optim, "Adam", Recorded)
    args = smoke_args("sac", tmp_path, anneal_lr=True)  # 300 updates after 300 random steps
    sac.train(args)
    rates = read_scalars(only_run_dir(tmp_path), "charts/learning_rate")
    assert [step for step, _ in rates] == [400, 500, 600]  # every 100 updates
    for step, rate in rates:
        assert rate == pytest.approx((1 - step / args.total_timesteps) * args.learning_rate, rel=1e-5)
    assert [optimizer.param_groups[0]["lr"] for optimizer in optimizers] == [0.0] * 3  # critics, actor and α


@pytest.mark.learning
@module_ids
def test_learns_pendulum_in_20k_steps(module, tmp_path):
    # Threshold from the issue: ≥ −250 (random policy ≈ −1200; the RL Baselines3 Zoo's tuned agents −150 to −175 at
    # 20k steps) within 20k env steps, with the default hyperparameters. Seeds 1-5 of each, final evaluation means
    # (after issue 18's layout pass, which changed the replay buffer's sampler and DDPG's critic initialization):
    # ddpg −134.8, −128.9, −129.6, −124.1, −132.7; td3 −135.4, −122.5, −134.0, −122.0, −132.5; sac −132.5, −119.9,
    # −130.7, −118.3, −129.0.
    # sac learns within half the budget, so its test stops at 10k steps (its gradient step every env step made the 20k
    # run the suite's slowest test, 224 s): seeds 1-5 at 10k, −132.6, −118.3, −129.9, −120.2, −132.3.
    budget = 10_000 if module is sac else 20_000
    assert_learns(module, tmp_path, budget, -250, total_timesteps=budget)
