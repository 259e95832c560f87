"""algos/rainbow.py: the n-step projection, the sum tree and prioritized replay, n-step returns, noisy layers, dueling
heads, and a learning test."""

import collections

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import (
    CHI_SQUARE_9_DOF_QUANTILE_999,
    assert_learns,
    chi_square,
    chi_square_against_uniform,
    load_algo,
    smoke_args,
)

rainbow = load_algo("rainbow")


def project(next_probs, returns, discounts, atoms):
    target_atoms = rainbow.td_target(returns[:, None], atoms, discounts[:, None])
    return rainbow.project_distribution(next_probs, target_atoms, atoms)


def brute_force_projection(next_probs, returns, discounts, atoms):
    """Φ as Bellemare et al. write it (eq. 7), one pair of atoms at a time, in float64:
    (Φ T̂Z)_i = Σ_j [1 − |clip(R + discount · z_j, v_min, v_max) − z_i| / Δz]_0^1 p_j."""
    next_probs, returns, discounts, atoms = (
        np.asarray(a, dtype=np.float64) for a in (next_probs, returns, discounts, atoms)
    )
    delta_z = (atoms[-1] - atoms[0]) / (len(atoms) - 1)
    target = np.zeros_like(next_probs)
    for row in range(len(returns)):
        for j in range(len(atoms)):
            tz = min(max(returns[row] + discounts[row] * atoms[j], atoms[0]), atoms[-1])
            for i in range(len(atoms)):
                target[row, i] += min(max(1.0 - abs(tz - atoms[i]) / delta_z, 0.0), 1.0) * next_probs[row, j]
    return target


def test_projection_matches_a_brute_force_of_its_definition():
    generator = torch.Generator().manual_seed(0)
    atoms = torch.linspace(-10.0, 10.0, 21)
    next_probs = torch.softmax(torch.randn(32, 21, generator=generator), dim=1)
    returns = torch.randn(32, generator=generator) * 4  # some shifted atoms leave the support
    # one-step (γ), n-step (γ³), terminal (0) discounts; and shifts that land exactly on atoms (R = 1, discount 1)
    discounts = torch.tensor([0.9, 0.9**3, 0.0, 1.0]).repeat(8)
    returns[3::4] = 1.0
    np.testing.assert_allclose(
        project(next_probs, returns, discounts, atoms),
        brute_force_projection(next_probs, returns, discounts, atoms),
        atol=1e-6,
    )


def test_projection_keeps_mass_and_the_mean_inside_the_support():
    generator = torch.Generator().manual_seed(0)
    atoms = torch.linspace(-10.0, 10.0, 51)
    next_probs = torch.softmax(torch.randn(64, 51, generator=generator), dim=1)
    rewards = torch.randn(64, generator=generator) * 4
    # an n-step discount γ³ keeps the mass and, inside the support, the mean R + γ³ E[z]
    discounts = torch.full((64,), 0.9**3)
    target = project(next_probs, rewards / 4, discounts, atoms)
    np.testing.assert_allclose(target.sum(dim=1), np.ones(64), atol=1e-5)
    shifted_mean = rewards / 4 + discounts * (next_probs * atoms).sum(dim=1)
    np.testing.assert_allclose((target * atoms).sum(dim=1), shifted_mean, atol=1e-4)


def test_sum_tree_sums_and_updates_match_a_brute_force():
    rng = np.random.default_rng(0)
    tree = rainbow.SumTree(13)  # not a power of two
    priorities = np.zeros(13)
    for _ in range(20):
        idx = rng.integers(13, size=5)  # repeated indices included
        values = rng.random(5)
        tree.update(idx, values)
        for i, v in zip(idx, values, strict=True):
            priorities[i] = v
        assert tree.total() == pytest.approx(priorities.sum())
        np.testing.assert_allclose(tree.get(np.arange(13)), priorities)
    cumulative = np.cumsum(priorities)
    points = rng.random(1000) * priorities.sum()
    np.testing.assert_array_equal(tree.find(points), np.searchsorted(cumulative, points, side="right"))


def test_sum_tree_samples_in_proportion_to_priority():
    buffer = rainbow.ReplayBuffer(10, obs_dim=1, device=torch.device("cpu"), seed=0, alpha=1.0)
    for i in range(10):
        buffer.add(np.array([i]), i, 0.0, np.array([i]), 0.99)
    priorities = np.arange(1, 11, dtype=np.float64)
    buffer.update_priorities(np.arange(10), priorities - 1e-6)  # p_i = i + 1 exactly, after the +1e-6
    samples = np.concatenate([buffer.sample(32)[-1] for _ in range(2000)])
    assert chi_square(samples, priorities / priorities.sum()) < CHI_SQUARE_9_DOF_QUANTILE_999


def test_prioritized_sampling_weights_and_new_transitions_priority():
    buffer = rainbow.ReplayBuffer(4, obs_dim=1, device=torch.device("cpu"), seed=0, alpha=0.5)
    for i in range(4):
        buffer.add(np.array([i]), i, float(i), np.array([i]), 0.9)
    buffer.update_priorities(np.arange(4), np.array([1.0, 4.0, 9.0, 16.0]) - 1e-6)
    *_, weights, idx = buffer.sample(64, beta=0.5)
    probs = np.sqrt([1.0, 4.0, 9.0, 16.0]) / 10.0  # P(i) = p_i^α / Σ p^α with α = ½
    expected = (4 * probs[idx]) ** -0.5
    np.testing.assert_allclose(weights.numpy(), expected / expected.max(), rtol=1e-5)
    # at capacity the oldest row is overwritten, and the new transition gets the largest priority seen (16)
    buffer.add(np.array([7]), 3, 7.0, np.array([7]), 0.9)
    assert buffer.obs[0, 0] == 7 and buffer.size == 4 and buffer.pos == 1
    assert buffer.tree.get(np.array([0]))[0] == pytest.approx(4.0)  # 16^½


def test_uniform_buffer_samples_uniformly_with_unit_weights():
    buffer = rainbow.ReplayBuffer(10, obs_dim=1, device=torch.device("cpu"), seed=0)
    for i in range(10):
        buffer.add(np.array([i]), i, 0.0, np.array([i]), 0.99)
    samples, weights = [], []
    for _ in range(200):
        *_, w, idx = buffer.sample(50)
        samples.append(idx)
        weights.append(w)
    assert chi_square_against_uniform(np.concatenate(samples), 10) < CHI_SQUARE_9_DOF_QUANTILE_999
    assert torch.cat(weights).eq(1).all()


def brute_force_n_step(rewards, terminations, truncations, next_obs, n, gamma):
    """Every n-step transition of a trajectory of one env, from its definition: from step t, m = n steps or up to and
    including the step where the episode ends; R = Σ_{k<m} γ^k r_{t+k}; s' = the observation step t+m−1 led to;
    discount 0 if that step terminated, else γ^m. A transition whose m steps are not all played yet is not there."""
    transitions = []
    num_steps = len(rewards)
    for t in range(num_steps):
        m = 0
        while True:
            m += 1
            last = t + m - 1
            if last >= num_steps:
                m = None
                break
            if terminations[last] or truncations[last] or m == n:
                break
        if m is None:
            continue
        last = t + m - 1
        n_step_return = sum(gamma**k * rewards[t + k] for k in range(m))
        discount = 0.0 if terminations[last] else gamma**m
        transitions.append((t, n_step_return, next_obs[last], discount))
    return transitions


@pytest.mark.parametrize("n", [1, 3, 5])
def test_n_step_transitions_match_a_brute_force(n):
    rng = np.random.default_rng(n)
    num_steps, num_envs, gamma = 40, 2, 0.9
    rewards = rng.normal(size=(num_steps, num_envs))
    terminations = rng.random((num_steps, num_envs)) < 0.1
    truncations = (rng.random((num_steps, num_envs)) < 0.1) & ~terminations
    obs = rng.normal(size=(num_steps, num_envs, 2))  # the observation each step started from
    next_obs = rng.normal(size=(num_steps, num_envs, 2))  # the observation each step really led to
    collector = rainbow.NStepCollector(n, gamma, num_envs)
    produced = collections.defaultdict(list)
    for t in range(num_steps):
        actions = t * num_envs + np.arange(num_envs)  # each action names its step and its env
        for s, a, ret, s_next, discount in collector.push(
            obs[t], actions, rewards[t], next_obs[t], terminations[t], truncations[t]
        ):
            step, env = divmod(int(a), num_envs)
            np.testing.assert_array_equal(s, obs[step, env])
            produced[env].append((step, ret, s_next, discount))
    for env in range(num_envs):
        expected = brute_force_n_step(
            rewards[:, env], terminations[:, env], truncations[:, env], next_obs[:, env], n, gamma
        )
        got = sorted(produced[env], key=lambda x: x[0])
        assert [x[0] for x in got] == [x[0] for x in expected]
        for (_, ret, s_next, discount), (_, ret_e, s_next_e, discount_e) in zip(got, expected, strict=True):
            assert ret == pytest.approx(ret_e) and discount == pytest.approx(discount_e)
            np.testing.assert_array_equal(s_next, s_next_e)


def test_noisy_linear_is_factorized_gaussian_and_switches_off_in_eval():
    torch.manual_seed(0)
    layer = rainbow.NoisyLinear(6, 4, sigma0=0.5)
    assert torch.allclose(layer.weight_sigma, torch.full((4, 6), 0.5 / np.sqrt(6)))
    with torch.no_grad():
        layer.weight_sigma.uniform_(0.1, 1.0)
        layer.bias_sigma.uniform_(0.1, 1.0)
    x = torch.randn(3, 6)

    # the perturbation of the weights is σ_w ⊙ f(ε_out) f(ε_in)ᵀ: a rank-one noise matrix
    layer.reset_noise()
    eps_in, eps_out = layer.eps_in.clone(), layer.eps_out.clone()  # f(ε_in), f(ε_out)
    noise = torch.outer(eps_out, eps_in)
    assert torch.linalg.matrix_rank(noise) == 1
    expected = x @ (layer.weight_mu + layer.weight_sigma * noise).T + layer.bias_mu + layer.bias_sigma * eps_out
    torch.testing.assert_close(layer(x), expected)

    # new noise, new outputs; evaluation mode: the means alone, whatever the noise
    first = layer(x)
    layer.reset_noise()
    assert not torch.allclose(layer(x), first)
    layer.eval()
    torch.testing.assert_close(layer(x), x @ layer.weight_mu.T + layer.bias_mu)
    layer.reset_noise()
    torch.testing.assert_close(layer(x), x @ layer.weight_mu.T + layer.bias_mu)


def test_noise_is_standard_normal_before_the_f_transform():
    torch.manual_seed(0)
    layer = rainbow.NoisyLinear(20_000, 1, sigma0=0.5)
    eps = layer.eps_in  # f(ε) = sgn(ε) √|ε|, so sgn(f) f² = ε ~ N(0, 1)
    recovered = eps.sign() * eps**2
    assert recovered.mean().abs() < 0.03 and (recovered.std() - 1).abs() < 0.03


@pytest.mark.parametrize("distributional", [True, False])
def test_dueling_head_centres_the_advantages(distributional):
    torch.manual_seed(0)
    args = rainbow.Args(distributional=distributional, noisy=False)
    net = rainbow.QNetwork(4, 3, torch.linspace(-10, 10, args.n_atoms), args)
    x = torch.randn(8, 4)
    h = net.torso(x)
    value = net.value(h).view(8, 1, -1)
    # Q = V + A − mean_a A: averaged over actions, the head's outputs are the value stream's
    torch.testing.assert_close(net.outputs(x).mean(dim=1, keepdim=True), value)
    if distributional:
        torch.testing.assert_close(net.log_probs(x).exp().sum(-1), torch.ones(8, 3))


@pytest.mark.learning
def test_rainbow_learns_cartpole(tmp_path):
    # Threshold from the issue: ≥ 300 within 80k steps, dqn.py's bar (random ≈ 22). Five seeds of
    # `python algos/rainbow.py --seed N` (every component on, the paper's n = 3, σ_0 = 0.5, α = 0.5, β 0.4 → 1) before
    # settling: 500, 254.1, 335.9, 328.6, 500; seeds 1 and 5 reach 500 in training by 20k-30k steps, seeds 2-4 plateau
    # at 150-340. Seed 2 alone, one component off at a time: no noisy nets (ε-greedy) 500, one-step returns 500;
    # σ_0 = 0.1 did not help (218.6). Four of five pass the bar; the ablation table over 3 seeds is the
    # harness's to run (issue 8).
    # Those runs prioritized distributional transitions by their cross-entropy. With the Rainbow paper's KL(m ‖ p)
    # (issue 18), seeds 1-5 all end at 500.0 (final evaluation and last 10 training episodes alike).
    assert_learns(rainbow, tmp_path, 80_000, 300)


class _TableQ(nn.Module):
    """A non-distributional Q-network stub: Q(s, ·) is row s[0] of a table."""

    distributional = False

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table))
        self.register_buffer("atoms", torch.zeros(1))

    def forward(self, obs):
        return self.table[obs[:, 0].long()]


def test_priority_is_the_td_errors_magnitude_not_its_square():
    # Schaul et al. (2016): P(i) = p_i^α / Σ_k p_k^α with p_i = |δ_i|. With α = ½ and |δ| = 0.1, 1, 10:
    # √0.1, 1, √10 over their sum, 0.071 / 0.223 / 0.706 (the squared error as the priority gave 0.009 / 0.090 / 0.901)
    q_network = _TableQ([[0.0, 0.0]] * 4)  # Q = 0 everywhere; terminal transitions: y = R, δ = −R
    returns = torch.tensor([0.1, -1.0, 10.0])
    batch = (torch.arange(3.0)[:, None], torch.zeros(3, dtype=torch.int64), returns, torch.full((3, 1), 3.0))
    batch += (torch.zeros(3), torch.ones(3))  # discounts 0 (terminal), importance weights 1
    loss, priorities, _ = rainbow.td_loss(q_network, q_network, batch, double=True)
    assert loss.item() == pytest.approx((0.01 + 1 + 100) / 3, rel=1e-6)  # the loss is still the squared error
    np.testing.assert_allclose(priorities.numpy(), [0.1, 1.0, 10.0], rtol=1e-6)
    buffer = rainbow.ReplayBuffer(3, obs_dim=1, device=torch.device("cpu"), seed=0, alpha=0.5)
    for i in range(3):
        buffer.add(np.array([i]), 0, float(returns[i]), np.array([3]), 0.0)
    buffer.update_priorities(np.arange(3), priorities.numpy())
    probabilities = buffer.tree.get(np.arange(3)) / buffer.tree.total()
    np.testing.assert_allclose(probabilities, [0.0706, 0.2233, 0.7061], atol=5e-4)


def test_distributional_priority_is_the_kl_divergence_not_the_cross_entropy():
    # Hessel et al. (2018) prioritize by KL(m ‖ p). Support (0, 1, 2); p(s, 0) = (¼, ¼, ½), p(s, 1) = (3/5, 1/5, 1/5)
    # (logits (0, 0, ln 2) and (ln 3, 0, 0)); terminal transitions, so m is R projected: R = 0.5 → m = (½, ½, 0),
    # R = 2 → m = (0, 0, 1).
    # (s, 1, 0.5): cross-entropy −½ ln 3/5 − ½ ln 1/5 = 1.0601, KL = ½ ln(25/12) = 0.3670 (H(m) = ln 2);
    # (s, 0, 2): cross-entropy = KL = ln 2 = 0.6931 (H(m) = 0). The cross-entropy ranks the first higher, KL the second.
    args = rainbow.Args(noisy=False, dueling=False)
    network = rainbow.QNetwork(1, 2, torch.tensor([0.0, 1.0, 2.0]), args)
    with torch.no_grad():
        network.advantage[-1].weight.zero_()
        network.advantage[-1].bias.copy_(torch.tensor([0.0, 0.0, np.log(2), np.log(3), 0.0, 0.0]))
    batch = (torch.zeros(2, 1), torch.tensor([1, 0]), torch.tensor([0.5, 2.0]), torch.zeros(2, 1))
    batch += (torch.zeros(2), torch.ones(2))  # discounts 0 (terminal), importance weights 1
    loss, priorities, q_taken = rainbow.td_loss(network, network, batch, double=True)
    assert loss.item() == pytest.approx((-(np.log(0.6) + np.log(0.2)) / 2 + np.log(2)) / 2, rel=1e-5)
    np.testing.assert_allclose(priorities.numpy(), [0.5 * np.log(25 / 12), np.log(2)], rtol=1e-5)
    np.testing.assert_allclose(q_taken.detach().numpy(), [0.6, 1.25], rtol=1e-5)


def test_exploration_fraction_zero_explores_at_end_e_from_the_start(tmp_path):
    # --exploration-fraction 0 (with --no-noisy, ε-greedy) used to divide by a zero duration (ZeroDivisionError)
    assert rainbow.linear_schedule(1.0, 0.05, 0.0, 0) == 0.05
    assert rainbow.linear_schedule(1.0, 0.05, 0.0, 1_000) == 0.05
    summary = rainbow.train(smoke_args("rainbow", tmp_path, noisy=False, exploration_fraction=0.0))
    assert summary["args"]["exploration_fraction"] == 0.0 and summary["total_timesteps"] > 0
