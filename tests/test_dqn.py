"""algos/dqn.py: the TD target, truncation handling, the replay buffer, the schedules, and a learning test."""

import pytest
import torch
from helpers import (
    CHI_SQUARE_9_DOF_QUANTILE_999,
    assert_learns,
    chi_square_against_uniform,
    load_algo,
    transition,
    transitions,
)

dqn = load_algo("dqn")


def test_td_target_bootstraps_truncated_but_not_terminated_transitions():
    # a hand-built rollout of three transitions: an ordinary step, a terminal step and a time-limit truncation
    rewards = torch.tensor([1.0, 1.0, 1.0])
    next_q_max = torch.tensor([10.0, 10.0, 10.0])  # max_a' Q_target(s', a') of each s'
    terminations = torch.tensor([0.0, 1.0, 0.0])  # the third step was truncated, not terminated
    target = dqn.td_target(rewards, next_q_max, terminations, gamma=0.9)
    assert target.tolist() == pytest.approx([10.0, 1.0, 10.0])
    # treating the truncation as a termination (the bug this avoids) would cut the third target to the reward alone
    truncation_as_termination = dqn.td_target(rewards, next_q_max, torch.tensor([0.0, 1.0, 1.0]), gamma=0.9)
    assert truncation_as_termination[2].item() == pytest.approx(1.0)


def test_replay_buffer_returns_what_was_stored():
    rb = dqn.ReplayBuffer(capacity=8, obs_dim=2, device=torch.device("cpu"), seed=0)
    for value in range(5):
        rb.add(*transition(float(value)))
    obs, actions, rewards, next_obs, terminations = rb.sample(2_000)
    values = obs[:, 0]
    assert set(values.tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}  # every stored row, and nothing else
    # the fields of a sampled row belong to the same transition
    torch.testing.assert_close(next_obs[:, 1], values + 0.5)
    torch.testing.assert_close(actions, values.long() % 3)
    torch.testing.assert_close(rewards, values * 10)
    torch.testing.assert_close(terminations, (values % 2 == 0).float())
    assert obs.dtype == torch.float32 and actions.dtype == torch.long


def test_replay_buffer_wraps_at_capacity_also_with_several_envs():
    rb = dqn.ReplayBuffer(capacity=5, obs_dim=2, device=torch.device("cpu"), seed=0)
    for value in range(7):
        rb.add(*transition(float(value)))
    assert rb.size == 5 and rb.pos == 2
    assert sorted(rb.obs[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]  # the two oldest were overwritten
    assert rb.obs[0, 0] == 5.0 and rb.obs[1, 0] == 6.0
    # three envs at once across the wrap point: rows 2, 3 and 4 hold them
    batch = transitions((10.0, 11.0, 12.0))
    rb.add(*batch)
    assert rb.obs[:, 0].tolist() == [5.0, 6.0, 10.0, 11.0, 12.0] and rb.pos == 0
    rb.add(*transition(13.0))
    assert rb.obs[0, 0] == 13.0 and rb.pos == 1


def test_replay_buffer_samples_uniformly():
    rb = dqn.ReplayBuffer(capacity=10, obs_dim=2, device=torch.device("cpu"), seed=123)
    for value in range(10):
        rb.add(*transition(float(value)))
    sampled_rows = rb.sample(100_000)[0][:, 0].long().numpy()
    assert chi_square_against_uniform(sampled_rows, 10) < CHI_SQUARE_9_DOF_QUANTILE_999


def test_linear_schedule():
    assert dqn.linear_schedule(1.0, 0.05, duration=100, t=0) == 1.0
    assert dqn.linear_schedule(1.0, 0.05, duration=100, t=50) == pytest.approx(0.525)
    assert dqn.linear_schedule(1.0, 0.05, duration=100, t=100) == pytest.approx(0.05)
    assert dqn.linear_schedule(1.0, 0.05, duration=100, t=10_000) == 0.05


def test_steps_crossed_counts_updates_for_any_number_of_envs():
    # one env, an update every 2 steps: on even steps only
    assert [dqn.steps_crossed(step, 1, 2) for step in range(1, 7)] == [0, 1, 0, 1, 0, 1]
    # four envs, an update every 2 steps: two per iteration; every 10 steps: when the counter passes a multiple of 10
    assert [dqn.steps_crossed(step, 4, 2) for step in (4, 8, 12)] == [2, 2, 2]
    assert [dqn.steps_crossed(step, 4, 10) for step in (4, 8, 12, 16, 20, 24)] == [0, 0, 1, 0, 1, 0]


@pytest.mark.learning
def test_dqn_learns_cartpole(tmp_path):
    # Threshold from the issue: ≥ 300 (random policy ≈ 22, the maximum 500) within 80k env steps, with the default
    # hyperparameters. Five seeds of `python algos/dqn.py --seed N` (80k steps) with the final code: final
    # evaluation mean 500.0 for each of seeds 1-5 (last-10-training-episode means 500, 500, 406.5, 500, 477.3).
    # Earlier candidates show why the defaults are what they are: lr 1e-3, one gradient step every 2 env steps and a
    # constant rate gave 335 and 101 on seeds 1-2; the same rounds without lr annealing gave 500, 349, 464, 500, 500.
    assert_learns(dqn, tmp_path, 80_000, 300)


def test_exploration_fraction_zero_explores_at_end_e_from_the_start():
    # --exploration-fraction 0 used to divide by a zero duration
    assert dqn.linear_schedule(1.0, 0.05, 0.0, 0) == 0.05
    assert dqn.linear_schedule(1.0, 0.05, 0.0, 1_000) == 0.05
