"""The replay buffer of flat transitions that the DQN family (discrete actions) and the actor-critics (continuous
actions) share: what is stored comes back whole, a full buffer overwrites its oldest rows (also a step of several envs
across the wrap point), and sampling is uniform. One test per property, over every copy; rainbow's prioritized n-step
buffer, hac's goal-conditioned one and the sequence and episode buffers of planet and qmix are tested in their own
files."""

import pytest
import torch
from helpers import (
    CHI_SQUARE_9_DOF_QUANTILE_999,
    chi_square_against_uniform,
    load_algo,
    transition,
    transitions,
)

DISCRETE = ["dqn", "c51", "qr_dqn"]
CONTINUOUS = ["ddpg", "td3", "sac"]
OBS_DIM, ACT_DIM = 3, 2


def make_buffer(name: str, capacity: int, seed: int = 0):
    """The script's buffer and its `transition` arguments (a continuous action has ACT_DIM entries)."""
    module = load_algo(name)
    if name in DISCRETE:
        return module.ReplayBuffer(capacity, OBS_DIM, torch.device("cpu"), seed), {"obs_dim": OBS_DIM}
    return module.ReplayBuffer(capacity, OBS_DIM, ACT_DIM, torch.device("cpu"), seed), {
        "obs_dim": OBS_DIM,
        "act_dim": ACT_DIM,
    }


@pytest.mark.parametrize("name", DISCRETE + CONTINUOUS)
def test_what_is_stored_comes_back_whole(name):
    rb, shape = make_buffer(name, capacity=8)
    for value in range(5):
        rb.add(*transition(float(value), **shape))
    obs, actions, rewards, next_obs, terminations = rb.sample(2_000)
    values = obs[:, 0]
    assert set(values.tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}  # every stored row, and nothing else
    # the fields of a sampled row belong to the same transition
    torch.testing.assert_close(next_obs[:, OBS_DIM - 1], values + 0.5)
    if name in DISCRETE:
        torch.testing.assert_close(actions, values.long() % 3)
        assert actions.dtype == torch.long
    else:
        torch.testing.assert_close(actions[:, ACT_DIM - 1], -values)
        assert actions.dtype == torch.float32
    torch.testing.assert_close(rewards, values * 10)
    torch.testing.assert_close(terminations, (values % 2 == 0).float())
    assert obs.dtype == torch.float32


@pytest.mark.parametrize("name", DISCRETE + CONTINUOUS)
def test_a_full_buffer_overwrites_its_oldest_rows_also_across_the_wrap_point(name):
    rb, shape = make_buffer(name, capacity=5)
    for value in range(7):
        rb.add(*transition(float(value), **shape))
    assert rb.size == 5 and rb.pos == 2
    assert rb.obs[:, 0].tolist() == [5.0, 6.0, 2.0, 3.0, 4.0]  # the two oldest were overwritten
    # three envs at once from row 2: rows 2, 3 and 4; then two across the wrap point: rows 0 and 1
    rb.add(*transitions((10.0, 11.0, 12.0), **shape))
    assert rb.obs[:, 0].tolist() == [5.0, 6.0, 10.0, 11.0, 12.0] and rb.pos == 0
    rb.pos = 4
    rb.add(*transitions((13.0, 14.0), **shape))
    assert rb.obs[:, 0].tolist() == [14.0, 6.0, 10.0, 11.0, 13.0] and rb.pos == 1
    assert rb.rewards.tolist() == [140.0, 60.0, 100.0, 110.0, 130.0]  # the other fields moved with them


@pytest.mark.parametrize("name", DISCRETE + CONTINUOUS)
def test_sampling_is_uniform(name):
    rb, shape = make_buffer(name, capacity=10, seed=123)
    for value in range(10):
        rb.add(*transition(float(value), **shape))
    sampled_rows = rb.sample(100_000)[0][:, 0].long().numpy()
    assert chi_square_against_uniform(sampled_rows, 10) < CHI_SQUARE_9_DOF_QUANTILE_999
