"""algos/c51.py and algos/qr_dqn.py: the categorical projection, the quantile Huber loss, and learning tests."""

import numpy as np
import pytest
import torch
from helpers import assert_learns, load_algo

c51, qr_dqn = load_algo("c51"), load_algo("qr_dqn")

ATOMS = torch.tensor([0.0, 1.0, 2.0])  # v_min 0, v_max 2, Δz 1


def project(next_probs, rewards, terminations, gamma=1.0, atoms=ATOMS):
    target_atoms = c51.td_target(torch.tensor(rewards), atoms, torch.tensor(terminations), gamma)
    return c51.project_distribution(torch.tensor(next_probs), target_atoms, atoms)


def test_c51_projection_hand_worked():
    # p = (0.2, 0.5, 0.3) on (0, 1, 2), r = 0.5, γ = 1: Tz = (0.5, 1.5, 2.5 → clipped to 2).
    # 0.2 at 0.5 splits 0.1/0.1 between atoms 0 and 1; 0.5 at 1.5 splits 0.25/0.25 between 1 and 2; 0.3 lands on 2.
    target = project([[0.2, 0.5, 0.3]], [0.5], [0.0])
    np.testing.assert_allclose(target, [[0.1, 0.35, 0.55]], atol=1e-6)
    # terminal: every atom moves to r = 0.5, half of the mass to each neighbour
    np.testing.assert_allclose(project([[0.2, 0.5, 0.3]], [0.5], [1.0]), [[0.5, 0.5, 0.0]], atol=1e-6)
    # a shift of exactly one atom keeps the mass on atoms (l = u for all but the clipped one)
    np.testing.assert_allclose(project([[0.2, 0.5, 0.3]], [1.0], [0.0]), [[0.0, 0.2, 0.8]], atol=1e-6)
    # mass beyond the support's edges is clipped onto the edge atoms
    np.testing.assert_allclose(project([[0.2, 0.5, 0.3]], [-5.0], [0.0]), [[1.0, 0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(project([[0.2, 0.5, 0.3]], [9.0], [1.0]), [[0.0, 0.0, 1.0]], atol=1e-6)


def test_c51_projection_conserves_mass_and_the_mean_inside_the_support():
    generator = torch.Generator().manual_seed(0)
    atoms = torch.linspace(-10.0, 10.0, 51)
    next_probs = torch.softmax(torch.randn(64, 51, generator=generator), dim=1)
    rewards = torch.rand(64, generator=generator) * 2 - 1
    terminations = (torch.rand(64, generator=generator) < 0.3).float()
    target = c51.project_distribution(next_probs, c51.td_target(rewards, atoms, terminations, 0.5), atoms)
    assert (target >= 0).all()
    np.testing.assert_allclose(target.sum(dim=1), np.ones(64), atol=1e-5)
    # with γ = 0.5 and |r| ≤ 1 no shifted atom leaves [−10, 10], so the linear split keeps each mean exactly
    shifted_mean = rewards + 0.5 * (1 - terminations) * (next_probs * atoms).sum(dim=1)
    np.testing.assert_allclose((target * atoms).sum(dim=1), shifted_mean, atol=1e-4)


def test_quantile_huber_loss_against_a_direct_computation():
    generator = torch.Generator().manual_seed(1)
    quantiles, targets, kappa = torch.randn(3, 4, generator=generator), torch.randn(3, 5, generator=generator), 0.7
    total = 0.0
    for b in range(3):
        for i in range(4):
            tau = (2 * i + 1) / 8
            for j in range(5):
                u = float(targets[b, j] - quantiles[b, i])
                huber = 0.5 * u * u if abs(u) <= kappa else kappa * (abs(u) - 0.5 * kappa)
                total += abs(tau - (u < 0)) * huber / kappa / 5  # mean over j, sum over i
    assert qr_dqn.quantile_huber_loss(quantiles, targets, kappa).item() == pytest.approx(total / 3, rel=1e-5)


def test_quantile_regression_finds_the_quantiles_of_a_distribution():
    # minimizing the loss against samples of an exponential distribution puts θ_i at its τ̂_i-quantiles −ln(1 − τ̂_i)
    generator = torch.Generator().manual_seed(2)
    theta = torch.zeros(1, 4, requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=0.02)
    for _ in range(1500):
        samples = torch.empty(1, 256).exponential_(generator=generator)
        loss = qr_dqn.quantile_huber_loss(theta, samples, kappa=0.01)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tau_hat = (np.arange(4) + 0.5) / 4
    np.testing.assert_allclose(theta.detach()[0], -np.log(1 - tau_hat), atol=0.06)


def test_qr_dqn_target_bootstraps_truncated_but_not_terminated_transitions():
    next_quantiles = torch.tensor([[1.0, 3.0], [1.0, 3.0]])
    target = qr_dqn.td_target(torch.tensor([1.0, 1.0]), next_quantiles, torch.tensor([0.0, 1.0]), gamma=0.5)
    np.testing.assert_allclose(target, [[1.5, 2.5], [1.0, 1.0]])


def _last_layer_outputs(network, bias):
    """Make the network's output layer ignore its input and output `bias` (the logits or quantiles, action-major)."""
    with torch.no_grad():
        network.fc3.weight.zero_()
        network.fc3.bias.copy_(torch.tensor(bias))
    return network


def test_networks_q_values_are_the_means_of_their_distributions():
    obs = torch.randn(5, 4)
    with torch.no_grad():
        # logits (0, 0, ln 2) on the support (0, 1, 2): p = (¼, ¼, ½), mean ¼ + 2·½ = 1.25;
        # logits (ln 3, 0, 0): p = (3/5, 1/5, 1/5), mean 1/5 + 2/5 = 0.6
        network = _last_layer_outputs(c51.QNetwork(4, 2, ATOMS), [0.0, 0.0, np.log(2), np.log(3), 0.0, 0.0])
        np.testing.assert_allclose(network.log_probs(obs).exp()[0], [[0.25, 0.25, 0.5], [0.6, 0.2, 0.2]], atol=1e-6)
        np.testing.assert_allclose(network(obs), np.tile([1.25, 0.6], (5, 1)), atol=1e-6)
        # quantiles (1, 2, 6) and (−1, 0, 4): Q = 3 and 1
        network = _last_layer_outputs(qr_dqn.QNetwork(4, 2, 3), [1.0, 2.0, 6.0, -1.0, 0.0, 4.0])
        np.testing.assert_array_equal(network.quantiles(obs)[0], [[1.0, 2.0, 6.0], [-1.0, 0.0, 4.0]])
        np.testing.assert_allclose(network(obs), np.tile([3.0, 1.0], (5, 1)), atol=1e-6)


def test_c51_and_qr_dqn_losses_against_hand_worked_values():
    # one transition (s, a = 1, r = 0.5, terminal); c51's target puts all mass at r = 0.5, half on atom 0 and half on
    # atom 1, against p(s, 1) = (3/5, 1/5, 1/5): cross-entropy −(½ ln 3/5 + ½ ln 1/5) = 1.0601
    network = _last_layer_outputs(c51.QNetwork(1, 2, ATOMS), [0.0, 0.0, np.log(2), np.log(3), 0.0, 0.0])
    batch = (torch.zeros(1, 1), torch.tensor([1]), torch.tensor([0.5]), torch.zeros(1, 1), torch.tensor([1.0]))
    loss, q_taken = c51.td_loss(network, network, batch, gamma=0.9)
    assert loss.item() == pytest.approx(-(np.log(0.6) + np.log(0.2)) / 2, rel=1e-5)
    assert q_taken.item() == pytest.approx(0.6, rel=1e-5)
    # QR-DQN, N = 2 at τ̂ = ¼, ¾, κ = 1: quantiles θ(s, 1) = (−1, 0) against the target (0.5, 0.5) (terminal).
    # u = 1.5 (i = 1): ¼ · (1.5 − ½) = 0.25; u = 0.5 (i = 2): ¾ · ½ · 0.5² = 0.09375; Σ_i mean_j = 0.34375
    network = _last_layer_outputs(qr_dqn.QNetwork(1, 2, 2), [5.0, 6.0, -1.0, 0.0])
    loss, q_taken = qr_dqn.td_loss(network, network, batch, gamma=0.9, kappa=1.0)
    assert loss.item() == pytest.approx(0.34375, rel=1e-6) and q_taken.item() == pytest.approx(-0.5)
    # not terminal, γ = 0.5: a* = argmax_a Q(s', a) = 0 (Q = 5.5), target 0.5 + 0.5 · (5, 6) = (3, 3.5); u_ij ≥ 1 all:
    # i = 1: ¼ mean(4 − ½, 4.5 − ½) = 0.9375; i = 2: ¾ mean(3 − ½, 3.5 − ½) = 2.0625; total 3.0
    batch = batch[:4] + (torch.tensor([0.0]),)
    loss, _ = qr_dqn.td_loss(network, network, batch, gamma=0.5, kappa=1.0)
    assert loss.item() == pytest.approx(3.0, rel=1e-6)


@pytest.mark.parametrize("module", [c51, qr_dqn], ids=["c51", "qr_dqn"])
def test_exploration_fraction_zero_explores_at_end_e_from_the_start(module):
    # --exploration-fraction 0 used to divide by a zero duration (ZeroDivisionError)
    assert module.linear_schedule(1.0, 0.05, 0.0, 0) == 0.05
    assert module.linear_schedule(1.0, 0.05, 0.0, 1_000) == 0.05


@pytest.mark.learning
def test_c51_learns_cartpole(tmp_path):
    # The bar of dqn.py: ≥ 300 (random ≈ 22, maximum 500) within 80k env steps, with the defaults. Five seeds of
    # `python algos/c51.py --seed N`: final evaluation mean 500.0 for each of seeds 1-5 (last-10-training-episode means
    # 317.2, 496.2, 438.9, 362.6, 500.0). With dqn.py's learning rate 2.3e-3: 500, 110.5, 500, 500, 500.
    assert_learns(c51, tmp_path, 80_000, 300)


@pytest.mark.learning
def test_qr_dqn_learns_cartpole(tmp_path):
    # The bar of dqn.py: ≥ 300 (random ≈ 22, maximum 500) within 80k env steps, with the defaults (N = 25, κ = 1,
    # learning rate 5e-4). Five seeds of `python algos/qr_dqn.py --seed N`: final evaluation mean 500.0 for each of
    # seeds 1-5 (last-10-training-episode means 500 for all five).
    # Candidates before settling (seeds 1-5): learning rate 2.3e-3 with N = 25 gave 500, 500, 90.7, 345.8, 500;
    # the same with κ = 10 gave 157.1, 381.3, 500, 500, 500; N = 10 (the RL Zoo's) gave 282.6 on seed 1.
    assert_learns(qr_dqn, tmp_path, 80_000, 300)
