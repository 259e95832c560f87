"""algos/planet.py: the cross-entropy method on functions with a known optimum, the planner's imagined returns, the
Gaussian KL, free nats, the model's one-step prediction on Pendulum data, the replay buffer's chunks and episode ends,
action repeat, the pixel networks and a smoke run from pixels. PlaNet's learning (Pendulum-v1 from its state in 50
episodes) is a benchmark (the quick suite), not a test: it takes about a quarter of an hour on one core."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import load_algo, model_file, only_run_dir, read_scalars

planet = load_algo("planet")


# ---------------------------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------------------------
def test_cem_finds_the_optimum_of_a_known_function():
    # f(a) = −Σ (a − a*)² over sequences of 5 two-dimensional actions: its maximum is at a*
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(5, 2, generator=generator) * 1.6 - 0.8
    objective = lambda sequences: -((sequences - target) ** 2).sum(dim=(1, 2))  # noqa: E731
    mean = planet.cem(objective, 5, 2, candidates=300, top_k=30, iterations=15, generator=generator, device="cpu")
    torch.testing.assert_close(mean, target, atol=0.02, rtol=0)


def test_cem_finds_an_optimum_on_the_bounds():
    # f(a) = Σ_t w_t a_t with weights of either sign: the maximum is a_t = sign(w_t), a corner of [−1, 1]^H
    generator = torch.Generator().manual_seed(1)
    weights = torch.tensor([[1.0], [-2.0], [0.5], [-0.3], [3.0], [-1.0]])
    objective = lambda sequences: (sequences * weights).sum(dim=(1, 2))  # noqa: E731
    mean = planet.cem(objective, 6, 1, candidates=200, top_k=20, iterations=10, generator=generator, device="cpu")
    torch.testing.assert_close(mean, torch.sign(weights), atol=0.05, rtol=0)


def test_cem_with_every_candidate_in_the_elite_keeps_the_sample_mean():
    # top_k = candidates: one iteration's mean is that of all the (clipped) samples, drawn from N(0, I)
    generator = torch.Generator().manual_seed(2)
    mean = planet.cem(lambda seq: seq.sum(dim=(1, 2)), 3, 2, 4000, 4000, 1, generator, "cpu")
    assert mean.abs().max().item() < 0.05


class ShiftModel:
    """A stand-in for the world model whose rollout has a closed form: h_{t+1} = s_t + a_t, the prior N(h, σ²) and the
    predicted reward r̂ = h + s (shapes (J, 1))."""

    def __init__(self, std: float):
        self.std = std

    def deterministic_step(self, h, s, action):
        return s + action

    def prior(self, h):
        return h, torch.full_like(h, self.std)

    def predict_reward(self, h, s):
        return (h + s).squeeze(-1)


def test_imagined_returns_sum_the_predicted_rewards_through_the_prior():
    # With σ = 0, s_t = h_t and h_{t+1} = h_t + a_t from h_1 = s_0 + a_0: h_t = s_0 + Σ_{k<t} a_k, and the return
    # Σ_{t=1..H} r̂_t = 2 Σ_t h_t = 2 (H s_0 + Σ_k (H − k) a_k); the belief's h_0 plays no part.
    sequences = torch.tensor(
        [[[0.5], [-1.0], [0.25], [1.0]], [[1.0], [1.0], [1.0], [1.0]], [[0.0], [0.0], [0.0], [0.0]]]
    )
    h, s = torch.tensor([[7.0]]), torch.tensor([[0.3]])
    returns = planet.imagined_returns(ShiftModel(0.0), h, s, sequences, torch.Generator().manual_seed(0))
    horizon, weights = 4, torch.tensor([4.0, 3.0, 2.0, 1.0])
    expected = 2 * (horizon * 0.3 + (sequences[..., 0] * weights).sum(dim=1))
    torch.testing.assert_close(returns, expected)  # 2 (1.2 + 2 − 3 + 0.5 + 1), 2 (1.2 + 10), 2 · 1.2


def test_imagined_returns_sample_the_prior_at_every_step():
    # With σ > 0, s_t = h_t + σ ε_t: the noise ε_j of step j is in s_j, …, s_H and (through h) in h_{j+1}, …, h_H, so
    # the return is the closed form above plus σ Σ_j (2 (H − j) + 1) ε_j, of variance σ² (7² + 5² + 3² + 1²) = 21 for
    # H = 4 and σ = 0.5 (the prior's mean alone would give none).
    sequences = torch.tensor([[0.5], [-1.0], [0.25], [1.0]]).expand(20_000, 4, 1)
    returns = planet.imagined_returns(
        ShiftModel(0.5), torch.zeros(1, 1), torch.full((1, 1), 0.3), sequences, torch.Generator().manual_seed(0)
    )
    assert returns.mean().item() == pytest.approx(2 * (4 * 0.3 + 2.0 - 3.0 + 0.5 + 1.0), abs=0.15)  # σ/√n: 0.04
    assert returns.var().item() == pytest.approx(21.0, rel=0.05)  # the sample variance's error: 1% here


# ---------------------------------------------------------------------------------------------------------------------
# The model's objective
# ---------------------------------------------------------------------------------------------------------------------
def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mean_q, mean_p = torch.randn(7, 5), torch.randn(7, 5)
    std_q, std_p = torch.rand(7, 5) + 0.1, torch.rand(7, 5) + 0.1
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean_q, std_q), torch.distributions.Normal(mean_p, std_p)
    ).sum(-1)
    torch.testing.assert_close(planet.gaussian_kl(mean_q, std_q, mean_p, std_p), expected)
    assert planet.gaussian_kl(mean_q, std_q, mean_q, std_q).abs().max().item() < 1e-6


def test_free_nats_bound_the_kl_term_from_below():
    torch.manual_seed(0)
    model = planet.WorldModel((3,), 1, False, planet.Args(deterministic_size=8, stochastic_size=4, hidden_size=16))
    obs, actions, rewards = torch.randn(4, 6, 3), torch.rand(4, 6, 1) * 2 - 1, torch.randn(4, 6)
    torch.manual_seed(1)
    _, parts = planet.model_loss(model, obs, actions, rewards, free_nats=0.0)
    torch.manual_seed(1)
    total, free = planet.model_loss(model, obs, actions, rewards, free_nats=1e3)
    assert parts["kl_loss"].item() == pytest.approx(parts["kl"].item())  # no free nats: the KL itself
    assert free["kl_loss"].item() == pytest.approx(1e3)  # every step's KL is below 1000 nats: the constant
    assert total.item() == pytest.approx((free["observation_loss"] + free["reward_loss"] + 1e3).item())
    # the observation loss is ½ Σ (ô − o)², here recomputed with the same samples
    torch.manual_seed(1)
    prev_actions = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)
    states = planet.observe(model, obs, prev_actions)
    predicted = model.predict_observation(states["h"], states["s"])
    assert parts["observation_loss"].item() == pytest.approx((0.5 * ((predicted - obs) ** 2).sum(-1)).mean().item())
    predicted_rewards = model.predict_reward(states["h"][:, 1:], states["s"][:, 1:])
    assert parts["reward_loss"].item() == pytest.approx(
        (0.5 * (predicted_rewards - rewards[:, :-1]) ** 2).mean().item()
    )


def _pendulum_buffer(episodes: int, seed: int):
    """Pendulum-v1 with uniformly random actions, repeated twice each: 100 rows an episode."""
    env = gym.make("Pendulum-v1")
    rb = planet.ReplayBuffer(episodes * 100, (3,), np.float32, 1, seed=seed)
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action = rng.uniform(-1, 1, size=1).astype(np.float32)
            next_obs, reward, done, _ = planet.repeat_action(env, action * 2.0, 2)
            rb.add(obs, action, reward, episode)
            obs = next_obs
    return rb


def _one_step_prediction_errors(model, obs, actions, rewards):
    """Mean squared errors of one-step predictions: from the posterior belief at t and the action a_t, one step of the
    prior alone predicts o_{t+1} and r_t."""
    with torch.no_grad():
        prev_actions = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)
        states = planet.observe(model, model.encoder(obs), prev_actions)
        h, s = states["h"][:, :-1].flatten(0, 1), states["s"][:, :-1].flatten(0, 1)
        h_next = model.deterministic_step(h, s, actions[:, :-1].flatten(0, 1))
        s_next = model.prior(h_next)[0]  # the prior's mean
        obs_error = ((model.predict_observation(h_next, s_next) - obs[:, 1:].flatten(0, 1)) ** 2).sum(-1).mean()
        reward_error = ((model.predict_reward(h_next, s_next) - rewards[:, :-1].flatten(0, 1)) ** 2).mean()
    return obs_error.item(), reward_error.item()


def test_model_learns_one_step_prediction_on_pendulum():
    torch.manual_seed(0)
    train_rb, test_rb = _pendulum_buffer(8, seed=0), _pendulum_buffer(2, seed=100)
    args = planet.Args(deterministic_size=32, stochastic_size=8, hidden_size=64, free_nats=1.0)
    model = planet.WorldModel((3,), 1, False, args)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, eps=args.adam_eps)
    held_out = [torch.as_tensor(x) for x in test_rb.sample(32, 20)]
    obs_before, reward_before = _one_step_prediction_errors(model, *held_out)
    for _ in range(300):
        batch = [torch.as_tensor(x) for x in train_rb.sample(16, 20)]
        loss, _ = planet.model_loss(model, *batch, free_nats=args.free_nats)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    obs_after, reward_after = _one_step_prediction_errors(model, *held_out)
    # Before training the predictions are near 0: the squared errors are E|o|² ≈ 6.5 (θ̇ up to 8) and E[r²] ≈ 257 (two
    # summed rewards, down to −33). A predictor of the mean alone would keep about all of the first and 0.43 of the
    # second (the rewards' variance, about 110). Five torch seeds (0-4) measured after 300 steps: observation error
    # 6.55 → 0.45, 6.49 → 0.37, 6.47 → 0.35, 6.29 → 0.33, 6.66 → 0.41 (ratios 0.053-0.069); reward error 257.6 → 2.7,
    # 257.4 → 2.1, 257.2 → 2.6, 253.3 → 2.2, 256.7 → 2.5 (ratios 0.008-0.010).
    assert obs_after < 0.2 * obs_before, (obs_before, obs_after)
    assert reward_after < 0.05 * reward_before, (reward_before, reward_after)


# ---------------------------------------------------------------------------------------------------------------------
# Data: the replay buffer's chunks and action repeat
# ---------------------------------------------------------------------------------------------------------------------
def test_chunks_lie_within_one_episode():
    rb = planet.ReplayBuffer(20, (1,), np.float32, 1, seed=0)
    for episode, length in enumerate((5, 3, 6)):  # positions 0-4, 5-7, 8-13
        for t in range(length):
            rb.add(np.array([episode * 100 + t]), np.zeros(1), float(t), episode)
    assert rb.chunk_starts(3).tolist() == [0, 1, 2, 5, 8, 9, 10, 11]
    assert rb.chunk_starts(6).tolist() == [8] and rb.chunk_starts(7).size == 0
    obs, _, rewards = rb.sample(200, 3)
    assert (np.diff(obs[..., 0], axis=1) == 1).all() and (np.diff(rewards, axis=1) == 1).all()


def test_chunks_wrap_around_a_full_buffer_but_not_across_its_write_position():
    rb = planet.ReplayBuffer(8, (1,), np.float32, 1, seed=0)
    for episode, length in enumerate((4, 7)):  # episode 1 fills 4-7, then wraps to 0-2, overwriting episode 0's 0-2
        for t in range(length):
            rb.add(np.array([episode * 100 + t]), np.zeros(1), 0.0, episode)
    assert rb.size == 8 and rb.pos == 3
    # episode 1 runs 4, 5, 6, 7, 0, 1, 2; position 3 is the last of episode 0, the oldest step
    assert rb.chunk_starts(3).tolist() == [0, 4, 5, 6, 7]
    obs, _, _ = rb.sample(100, 3)
    assert (np.diff(obs[..., 0], axis=1) == 1).all()


class CountingEnv(gym.Env):
    """Reward t at step t; the episode ends after 5 steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], dtype=np.float32), float(self.t), self.t >= 5, False, {}


def test_action_repeat_sums_rewards_and_stops_at_the_episode_end():
    env = CountingEnv()
    env.reset()
    assert planet.repeat_action(env, np.zeros(1), 3)[1:] == (1.0 + 2.0 + 3.0, False, 3)
    obs, reward, done, steps = planet.repeat_action(env, np.zeros(1), 3)  # steps 4 and 5, then the end
    assert (obs[0], reward, done, steps) == (5.0, 9.0, True, 2)


if "PlanetCounting-v0" not in gym.registry:
    gym.register("PlanetCounting-v0", entry_point=CountingEnv)


def test_an_episode_is_stored_with_its_final_observation_so_its_last_reward_is_a_target(tmp_path, monkeypatch):
    # CountingEnv: o_t = t and r_t = t + 1 for t = 0..4, and the episode ends in o_5 = 5. Row t of the buffer holds
    # (o_t, a_t, r_t) and h_{t+1} predicts r_t, so without a row for o_5 the last reward, 5, is never a target.
    buffers, targets = [], []

    class RecordingBuffer(planet.ReplayBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            buffers.append(self)

    model_loss = planet.model_loss

    def recording_loss(model, obs, actions, rewards, free_nats):
        targets.append(rewards[:, :-1].flatten())  # the rewards the loss asks the model to predict
        return model_loss(model, obs, actions, rewards, free_nats)

    monkeypatch.setattr(planet, "ReplayBuffer", RecordingBuffer)
    monkeypatch.setattr(planet, "model_loss", recording_loss)
    small = dict(deterministic_size=8, stochastic_size=2, hidden_size=8, horizon=2, candidates=8, top_k=2, iterations=1)
    args = planet.Args(
        env_id="PlanetCounting-v0",
        total_timesteps=15,  # three episodes, the model trained after each
        action_repeat=1,
        seed_episodes=1,
        train_steps=5,
        batch_size=16,
        chunk_length=3,
        eval_episodes=1,
        log_dir=str(tmp_path),
        **small,
    )
    planet.train(args)
    (rb,) = buffers
    stored = rb.episodes[: rb.size]
    for episode in range(3):
        assert rb.obs[: rb.size][stored == episode, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        assert rb.rewards[: rb.size][stored == episode][:5].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    # 240 chunks of 3 rows from 4 starts an episode: the chunk (o_3, o_4, o_5) asks for r_3 = 4 and r_4 = 5
    assert sorted(torch.cat(targets).unique().tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_actions_map_to_the_env_bounds():
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
    np.testing.assert_allclose(planet.to_env_action(torch.tensor([-1.0, 1.0]), low, high), [-2.0, 1.0])
    np.testing.assert_allclose(planet.to_env_action(torch.tensor([0.0, 0.0]), low, high), [0.0, 0.5])


# ---------------------------------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------------------------------
def test_pixel_observations_are_small_frames_of_the_env():
    env = planet.make_env("Pendulum-v1", from_pixels=True)
    first, _ = env.reset(seed=0)
    assert first.shape == (3, 64, 64) and first.dtype == np.uint8 and env.observation_space.contains(first)
    later, *_ = env.step(np.array([2.0], dtype=np.float32))
    for _ in range(10):
        later, *_ = env.step(np.array([2.0], dtype=np.float32))
    assert (first != later).any()  # the pendulum moved
    env.close()


def test_pixel_encoder_and_decoder_shapes():
    encoder, decoder = planet.ConvEncoder(), planet.ConvDecoder(feature_dim=20)
    assert encoder(torch.zeros(2, 5, 3, 64, 64)).shape == (2, 5, 1024)
    assert decoder(torch.zeros(2, 5, 20)).shape == (2, 5, 3, 64, 64)


def test_pixel_mode_smoke_run(tmp_path):
    small = dict(deterministic_size=16, stochastic_size=4, hidden_size=16, batch_size=2, chunk_length=8)
    planning = dict(horizon=3, candidates=8, top_k=2, iterations=2)
    args = planet.Args(
        from_pixels=True,
        total_timesteps=400,  # two episodes of 50 planned actions: one random, one planned
        action_repeat=4,
        seed_episodes=1,
        train_steps=2,
        eval_episodes=1,
        save_model=True,
        log_dir=str(tmp_path),
        **small,
        **planning,
    )
    summary = planet.train(args)
    run_dir = only_run_dir(tmp_path)
    # Pendulum's episodes of 200 env steps, 4 to a planned action, end at steps 200 and 400; the model trains after each
    assert read_scalars(run_dir, "charts/episodic_length") == [(200, 200.0), (400, 200.0)]
    assert [step for step, _ in read_scalars(run_dir, "losses/observation_loss")] == [200, 400]
    assert summary["eval_return_mean"] == pytest.approx(read_scalars(run_dir, "eval/episodic_return")[0][1], rel=1e-6)
    # the saved model is the pixel one: a convolutional encoder of 3-channel frames
    weights = torch.load(model_file(run_dir, "planet"), weights_only=True)["model"]
    assert weights["encoder.net.0.weight"].shape == (32, 3, 4, 4)
