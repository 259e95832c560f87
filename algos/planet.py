"""PlaNet: learn a latent dynamics model from experience, and plan in its latent space.

Hafner, Lillicrap, Fischer, Villegas, Ha, Lee & Davidson (2019), "Learning Latent Dynamics for Planning from
Pixels", ICML. The recurrent state-space model (RSSM) has a latent state of two parts, a deterministic h_t carried by a
GRU and a stochastic s_t:
  deterministic state model   h_t = f(h_{t−1}, s_{t−1}, a_{t−1})
  stochastic state model      s_t ~ p(s_t | h_t)             (the prior, a diagonal Gaussian)
  posterior                   s_t ~ q(s_t | h_t, o_t)        (a diagonal Gaussian, from h_t and the encoded o_t)
  observation model           o_t ~ p(o_t | h_t, s_t)        (a Gaussian of unit variance)
  reward model                r_t ~ p(r_t | h_t, s_t)        (a Gaussian of unit variance)
It is trained on chunks of `chunk_length` consecutive steps sampled from a replay buffer of every episode so far (each
with its final observation, so that the reward of an episode's last step is a target too), by the evidence lower
bound with free nats (eq. 3): Σ_t ln p(o_t | h_t, s_t) + ln p(r_t | h_t, s_t)
− max(free_nats, KL[q(s_t | h_t, o_t) ‖ p(s_t | h_t)]). Nothing else is learned: no policy and no value. Before each
action, the cross-entropy method (CEM) searches action sequences of `horizon` steps: `candidates` sequences are drawn
from a diagonal Gaussian, rolled out from the present belief through the prior alone (no observations), scored by
the sum of predicted rewards, and the Gaussian is refit to the best `top_k`, `iterations` times; the first action of
its mean is played, plus exploration noise while training, and repeated `action_repeat` times in the env. The first
`seed_episodes` episodes act uniformly at random; after each episode the model takes `train_steps` gradient steps.
The model predicts no episode end: it fits envs that are only cut off by a time limit (Pendulum, the DeepMind Control
tasks of the paper).

Observations: the state vector (default), or 64×64 RGB frames (`--from-pixels`, rendered through gymnasium's
rgb_array; a convolutional encoder and decoder as in the paper); on a CPU pixels are slow (a gradient step runs the
convolutional networks over batch_size × chunk_length frames), a GPU is the place for them. The defaults are the
paper's, except two things. The model is smaller (`hidden_size`, `deterministic_size`, `stochastic_size`) and CEM has
fewer candidates, so that state-based Pendulum-v1 learns in 50 episodes on one CPU core. And the free nats are 1, not
3: from a 3-number state the posterior's KL from the prior stays below 3 nats, so with 3 the KL term has no gradient
and the prior, which the planner rolls out, never learns. The paper's 3 were for pixels (`--from-pixels --free-nats 3`).
What was tried and measured: benchmarks/NOTES.md#planetpy

Spaces: Box observations (flat vectors; any, with --from-pixels), Box actions with finite bounds; for Discrete actions
use mcts.py (planning) or dqn.py.
Run: python algos/planet.py --env-id Pendulum-v1
     python algos/planet.py --env-id Pendulum-v1 --from-pixels
Benchmark: benchmarks/results/quick/README.md (Pendulum-v1 from its state, 50 episodes).
"""

# Imports
import atexit
import collections
import json
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NoReturn

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm


# Arguments
@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (prefix of the run folder)"""
    seed: int = 1
    """seed of python, numpy, torch and the envs"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """use CUDA when it is available (else CPU, silently)"""
    track: bool = False
    """log to Weights & Biases, syncing TensorBoard (WANDB_MODE=offline works without an account)"""
    wandb_project_name: str = "rl-reference"
    """the W&B project name"""
    wandb_entity: str | None = None
    """the W&B entity (team)"""
    capture_video: bool = False
    """record videos of the training env and of the evaluation episodes into the run folder"""
    save_model: bool = False
    """write the trained model to `{run folder}/{exp_name}.pt`"""
    checkpoint: str | None = None
    """path of a saved model: load it and only evaluate"""
    log_dir: str = "runs"
    """parent folder of the run folder"""
    snapshot_frequency: int = 0
    """every this many env steps, write a snapshot to the run folder that --resume continues from (0: never)"""
    resume: str | None = None
    """a run folder with a snapshot: continue that run from it, with the same arguments"""

    # Algorithm specific arguments
    env_id: str = "Pendulum-v1"
    """the gymnasium id of the env (defaults tuned on Pendulum-v1 from its state)"""
    total_timesteps: int = 10_000
    """env steps (action repeats included): 50 episodes of Pendulum-v1"""
    eval_episodes: int = 10
    """episodes of the final evaluation (planning without exploration noise)"""
    eval_frequency: int = 0
    """evaluate the greedy policy every N env steps, logged and written to evaluations.jsonl (0: only at the end)"""
    from_pixels: bool = False
    """observe 64×64 RGB frames rendered by the env instead of its state vector (slow on a CPU)"""
    action_repeat: int = 2
    """env steps per planned action (the rewards of the repeats are summed)"""
    seed_episodes: int = 5
    """episodes of uniformly random actions before the first planned one"""
    train_steps: int = 100
    """gradient steps of the model after each episode (the paper's collect interval C)"""
    batch_size: int = 50
    """chunks per gradient step"""
    chunk_length: int = 50
    """steps (planned actions) per chunk"""
    buffer_size: int = 1_000_000
    """the replay buffer capacity in rows: one per planned action and one per episode's final observation"""
    learning_rate: float = 1e-3
    """the Adam learning rate of the model"""
    adam_eps: float = 1e-4
    """Adam's ε"""
    max_grad_norm: float = 1000.0
    """gradients are clipped to this global norm"""
    free_nats: float = 1.0
    """the KL term of a step counts only above this many nats (the paper: 3, for pixels; see the docstring)"""
    deterministic_size: int = 64
    """the size of the GRU's deterministic state h"""
    stochastic_size: int = 16
    """the size of the stochastic state s"""
    hidden_size: int = 64
    """the width of the hidden layers of the model's dense networks"""
    min_std: float = 0.1
    """the smallest standard deviation of the prior and the posterior"""
    horizon: int = 12
    """planned actions per candidate sequence"""
    candidates: int = 500
    """action sequences drawn per CEM iteration"""
    top_k: int = 50
    """the best sequences the CEM Gaussian is refit to"""
    iterations: int = 10
    """CEM iterations per planned action"""
    exploration_noise: float = 0.3
    """the standard deviation of the Gaussian noise added to planned actions while training, in half action ranges"""


# The algorithm: environment, the RSSM world model, its loss (the ELBO) and update, the CEM planner, replay buffer
IMAGE_SIZE = 64


class PixelObservation(gym.ObservationWrapper):
    """Replaces the observation with the env's rgb_array frame, downscaled to 64×64 by area averaging: uint8, shape
    (3, 64, 64)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 255, (3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)

    def observation(self, observation):
        frame = torch.as_tensor(np.ascontiguousarray(self.env.render())).permute(2, 0, 1).float()[None]
        small = F.adaptive_avg_pool2d(frame, IMAGE_SIZE)[0]
        return small.round().clamp(0, 255).to(torch.uint8).numpy()


def make_env(env_id: str, from_pixels: bool, video_dir: str | None = None, every_episode: bool = False) -> gym.Env:
    env = gym.make(env_id, **({"render_mode": "rgb_array"} if from_pixels or video_dir else {}))
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=(lambda _: True) if every_episode else None)
    return PixelObservation(env) if from_pixels else env


def preprocess(obs: np.ndarray, from_pixels: bool, device) -> torch.Tensor:
    """Observations as the model sees them: frames scaled from [0, 255] to [−0.5, 0.5], states as they are."""
    obs = torch.as_tensor(obs, device=device)
    return obs.float() / 255.0 - 0.5 if from_pixels else obs.float()


def mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, out_dim)
    )


class ConvEncoder(nn.Module):
    """64×64 frames → 1024 features: four convolutions of kernel 4 and stride 2 (32, 64, 128, 256 channels)."""

    def __init__(self):
        super().__init__()
        channels = (3, 32, 64, 128, 256)
        layers = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Flatten())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch_shape = obs.shape[:-3]
        return self.net(obs.reshape(-1, *obs.shape[-3:])).reshape(*batch_shape, 1024)


class ConvDecoder(nn.Module):
    """Features → the mean of a 64×64 frame: a dense layer to 1024 channels at 1×1, then four transposed
    convolutions of kernels 5, 5, 6, 6 and stride 2 (128, 64, 32, 3 channels)."""

    def __init__(self, feature_dim: int):
        super().__init__()
        self.dense = nn.Linear(feature_dim, 1024)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(1024, 128, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 6, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 3, 6, stride=2),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch_shape = features.shape[:-1]
        x = self.dense(features).reshape(-1, 1024, 1, 1)
        return self.net(x).reshape(*batch_shape, 3, IMAGE_SIZE, IMAGE_SIZE)


class WorldModel(nn.Module):
    """The RSSM (the GRU's deterministic path, the prior and the posterior of the stochastic state) with the encoder,
    the observation model and the reward model. Actions enter in units of half the action range, in [−1, 1]."""

    def __init__(self, obs_shape: tuple, act_dim: int, from_pixels: bool, args: Args):
        super().__init__()
        deter, stoch, hidden = args.deterministic_size, args.stochastic_size, args.hidden_size
        self.deter, self.stoch, self.min_std = deter, stoch, args.min_std
        feature_dim = deter + stoch
        if from_pixels:
            self.encoder, embed_dim = ConvEncoder(), 1024
            self.decoder = ConvDecoder(feature_dim)
        else:
            self.encoder, embed_dim = nn.Identity(), int(np.prod(obs_shape))
            self.decoder = mlp(feature_dim, embed_dim, hidden)
        self.reward_model = mlp(feature_dim, 1, hidden)
        self.pre_gru = nn.Sequential(nn.Linear(stoch + act_dim, hidden), nn.ELU())
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_net = nn.Sequential(nn.Linear(deter, hidden), nn.ELU(), nn.Linear(hidden, 2 * stoch))
        self.posterior_net = nn.Sequential(nn.Linear(deter + embed_dim, hidden), nn.ELU(), nn.Linear(hidden, 2 * stoch))

    def gaussian(self, stats: torch.Tensor) -> tuple:
        """(mean, std) of a diagonal Gaussian from a network's output; std = softplus(·) + min_std."""
        mean, raw_std = stats.chunk(2, dim=-1)
        return mean, F.softplus(raw_std) + self.min_std

    def deterministic_step(self, h: torch.Tensor, s: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """h_t = f(h_{t−1}, s_{t−1}, a_{t−1}): a GRU cell fed a dense layer of the previous stochastic state and
        action."""
        return self.gru(self.pre_gru(torch.cat([s, action], dim=-1)), h)

    def prior(self, h: torch.Tensor) -> tuple:
        """p(s_t | h_t)"""
        return self.gaussian(self.prior_net(h))

    def posterior(self, h: torch.Tensor, embed: torch.Tensor) -> tuple:
        """q(s_t | h_t, o_t)"""
        return self.gaussian(self.posterior_net(torch.cat([h, embed], dim=-1)))

    def predict_reward(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The mean of p(r_t | h_t, s_t)."""
        return self.reward_model(torch.cat([h, s], dim=-1)).squeeze(-1)

    def predict_observation(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The mean of p(o_t | h_t, s_t)."""
        return self.decoder(torch.cat([h, s], dim=-1))


def sample(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """s = μ + σ ε, ε ~ N(0, I): the reparameterized sample, through which gradients flow to μ and σ."""
    return mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)


def observe(model: WorldModel, embeds: torch.Tensor, prev_actions: torch.Tensor) -> dict:
    """Filter a batch of chunks through the RSSM: for t = 0..L−1, h_t = f(h_{t−1}, s_{t−1}, a_{t−1}) (from h = 0, s = 0
    at the chunk's start), the prior p(s_t | h_t), the posterior q(s_t | h_t, o_t) and a sample s_t of it. embeds:
    (B, L, E), prev_actions: (B, L, A) holding a_{t−1} at t. Returns tensors of shape (B, L, ·)."""
    batch, length = embeds.shape[:2]
    h = embeds.new_zeros(batch, model.deter)
    s = embeds.new_zeros(batch, model.stoch)
    steps = collections.defaultdict(list)
    for t in range(length):
        h = model.deterministic_step(h, s, prev_actions[:, t])
        prior_mean, prior_std = model.prior(h)
        post_mean, post_std = model.posterior(h, embeds[:, t])
        s = sample(post_mean, post_std)
        for key, value in (("h", h), ("s", s), ("prior_mean", prior_mean), ("prior_std", prior_std)):
            steps[key].append(value)
        steps["post_mean"].append(post_mean)
        steps["post_std"].append(post_std)
    return {key: torch.stack(values, dim=1) for key, values in steps.items()}


def gaussian_kl(mean_q, std_q, mean_p, std_p) -> torch.Tensor:
    """KL[N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)] of diagonal Gaussians, summed over the last axis:
    Σ log(σ_p / σ_q) + (σ_q² + (μ_q − μ_p)²) / (2 σ_p²) − 1/2."""
    kl = torch.log(std_p / std_q) + (std_q**2 + (mean_q - mean_p) ** 2) / (2 * std_p**2) - 0.5
    return kl.sum(-1)


def model_loss(model: WorldModel, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, free_nats: float):
    """The negative ELBO of a batch of chunks (eq. 3 of the paper) with free nats. Row t of a chunk holds o_t, the
    action a_t taken at o_t and the reward r_t it earned; so h_{t+1} (which has seen a_t) predicts r_t. Gaussians of
    unit variance make the log-likelihoods squared errors (up to constants):
      observation loss  ½ Σ_dims (ô_t − o_t)², averaged over the batch and the chunk
      reward loss       ½ (r̂_{t+1} − r_t)²
      KL loss           max(free_nats, KL[q(s_t | h_t, o_t) ‖ p(s_t | h_t)]) per step.
    Returns the total loss and its parts (the raw KL before free nats too)."""
    prev_actions = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)
    states = observe(model, model.encoder(obs), prev_actions)
    h, s = states["h"], states["s"]
    predicted_obs = model.predict_observation(h, s)
    observation_loss = 0.5 * ((predicted_obs - obs) ** 2).flatten(2).sum(-1).mean()
    reward_loss = 0.5 * ((model.predict_reward(h[:, 1:], s[:, 1:]) - rewards[:, :-1]) ** 2).mean()
    kl = gaussian_kl(states["post_mean"], states["post_std"], states["prior_mean"], states["prior_std"])
    kl_loss = torch.clamp(kl, min=free_nats).mean()  # free nats: no gradient where the KL is below them
    total = observation_loss + reward_loss + kl_loss
    return total, {
        "observation_loss": observation_loss,
        "reward_loss": reward_loss,
        "kl_loss": kl_loss,
        "kl": kl.mean(),
    }


def update_model(model: WorldModel, optimizer, batch: tuple, args: Args, device) -> tuple:
    """One gradient step on the negative ELBO of a batch of chunks (obs, actions, rewards), the gradients clipped to
    `max_grad_norm`; returns the loss and its parts."""
    obs, actions, rewards = batch
    actions, rewards = torch.as_tensor(actions, device=device), torch.as_tensor(rewards, device=device)
    loss, parts = model_loss(model, preprocess(obs, args.from_pixels, device), actions, rewards, args.free_nats)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
    optimizer.step()
    return loss, parts


def cem(
    objective: Callable, horizon: int, act_dim: int, candidates: int, top_k: int, iterations: int, generator, device
):
    """The cross-entropy method over action sequences in [−1, 1]^(horizon × act_dim): start from N(0, I); each
    iteration draws `candidates` sequences (clipped to the bounds), scores them by `objective` ((candidates, horizon,
    act_dim) → (candidates,)), and refits the mean and the standard deviation to the best `top_k`. Returns the final
    mean sequence (horizon, act_dim)."""
    mean = torch.zeros(horizon, act_dim, device=device)
    std = torch.ones(horizon, act_dim, device=device)
    for _ in range(iterations):
        noise = torch.randn((candidates, horizon, act_dim), generator=generator, device=device)
        sequences = (mean + std * noise).clamp(-1.0, 1.0)
        elite = sequences[objective(sequences).topk(top_k).indices]
        mean, std = elite.mean(dim=0), elite.std(dim=0, unbiased=False)
    return mean


def imagined_returns(model: WorldModel, h: torch.Tensor, s: torch.Tensor, sequences: torch.Tensor, generator):
    """The predicted sum of rewards of each action sequence (J, H, A) from the belief (h, s) (shapes (1, ·)),
    rolled out through the prior alone: h_{t+1} = f(h_t, s_t, a_t), s_{t+1} ~ p(s_{t+1} | h_{t+1}), and r̂_t of
    (h_{t+1}, s_{t+1})."""
    h, s = h.expand(len(sequences), -1), s.expand(len(sequences), -1)
    total = torch.zeros(len(sequences), device=h.device)
    for t in range(sequences.shape[1]):
        h = model.deterministic_step(h, s, sequences[:, t])
        s = sample(*model.prior(h), generator)
        total = total + model.predict_reward(h, s)
    return total


def plan(model: WorldModel, h, s, args: Args, act_dim: int, generator) -> torch.Tensor:
    """The first action (in [−1, 1]) of the CEM plan from the belief (h, s)."""
    objective = lambda sequences: imagined_returns(model, h, s, sequences, generator)  # noqa: E731
    return cem(objective, args.horizon, act_dim, args.candidates, args.top_k, args.iterations, generator, h.device)[0]


def update_belief(model: WorldModel, h, s, prev_action, obs, args: Args, device, generator) -> tuple:
    """The belief after observing o_t: h_t = f(h_{t−1}, s_{t−1}, a_{t−1}), s_t ~ q(s_t | h_t, o_t)."""
    embed = model.encoder(preprocess(obs, args.from_pixels, device)[None])
    h = model.deterministic_step(h, s, prev_action[None])
    return h, sample(*model.posterior(h, embed), generator)


def initial_belief(model: WorldModel, act_dim: int, device) -> tuple:
    """(h, s, a_{−1}) before an episode's first observation: zeros, as at the start of every training chunk."""
    return (
        torch.zeros(1, model.deter, device=device),
        torch.zeros(1, model.stoch, device=device),
        torch.zeros(act_dim, device=device),
    )


def to_env_action(action: torch.Tensor, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[−1, 1] → the env's bounds."""
    return (low + (action.cpu().numpy() + 1.0) * (high - low) / 2).astype(np.float32)


def repeat_action(env: gym.Env, action: np.ndarray, repeat: int) -> tuple:
    """Step the env `repeat` times with one action (fewer if the episode ends): (obs, summed reward, done, steps)."""
    total_reward = 0.0
    for step in range(1, repeat + 1):
        obs, reward, terminated, truncated, _ = env.step(action)
        total_reward += float(reward)
        if terminated or truncated:
            return obs, total_reward, True, step
    return obs, total_reward, False, repeat


class ReplayBuffer:
    """Every step so far (o_t, a_t, r_t, the episode it belongs to) in preallocated arrays, FIFO at capacity, and after
    an episode's last step its final observation o_T (with a zero action and reward, which no loss reads: a chunk
    ends there), from which h_T predicts r_{T−1}; samples chunks of consecutive steps of one episode."""

    def __init__(self, capacity: int, obs_shape: tuple, obs_dtype, act_dim: int, seed: int):
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.episodes = np.full(capacity, -1, dtype=np.int64)
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.rng = np.random.default_rng(seed)

    def add(self, obs, action, reward: float, episode: int) -> None:
        self.obs[self.pos], self.actions[self.pos], self.rewards[self.pos] = obs, action, reward
        self.episodes[self.pos] = episode
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def chunk_starts(self, length: int) -> np.ndarray:
        """The positions where `length` consecutive steps of one episode begin. Episodes lie contiguously (modulo the
        capacity); once the buffer is full, a chunk must not run from the newest step (at pos − 1) into the oldest."""
        if self.size < length:
            return np.zeros(0, dtype=np.int64)
        if self.size < self.capacity:
            starts = np.arange(self.size - length + 1)
            return starts[self.episodes[starts] == self.episodes[starts + length - 1]]
        starts = np.arange(self.capacity)
        across_write = (self.pos - starts) % self.capacity
        valid = self.episodes[starts] == self.episodes[(starts + length - 1) % self.capacity]
        return starts[valid & ~((across_write >= 1) & (across_write <= length - 1))]

    def sample(self, batch_size: int, length: int) -> tuple:
        """(obs, actions, rewards) of `batch_size` chunks, shapes (B, L, ·), their starts drawn uniformly."""
        starts = self.chunk_starts(length)
        idx = (self.rng.choice(starts, size=batch_size)[:, None] + np.arange(length)) % self.capacity
        return self.obs[idx], self.actions[idx], self.rewards[idx]


def evaluate(model: WorldModel, args: Args, act_space, episodes: int, seed: int, device, video_dir=None) -> list:
    """Returns of `episodes` episodes on a fresh env, planning every action without exploration noise."""
    env = make_env(args.env_id, args.from_pixels, video_dir, every_episode=True)
    generator = torch.Generator(device=device).manual_seed(seed)
    act_dim = act_space.shape[0]
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        h, s, prev_action = initial_belief(model, act_dim, device)
        done, episode_return = False, 0.0
        while not done:
            with torch.inference_mode():
                h, s = update_belief(model, h, s, prev_action, obs, args, device, generator)
                prev_action = plan(model, h, s, args, act_dim, generator)
            obs, reward, done, _ = repeat_action(
                env, to_env_action(prev_action, act_space.low, act_space.high), args.action_repeat
            )
            episode_return += reward
        returns.append(episode_return)
    env.close()
    return returns


# Training
def check_args(args: Args) -> dict | None:
    """Reject bad input before anything is written; return the checkpoint to evaluate, if one is given."""
    checkpoint = check_common_args(args)
    check_positive(args, "max_grad_norm")
    check_positive(args, "action_repeat", "train_steps", "batch_size", "chunk_length", "buffer_size", "learning_rate")
    check_positive(args, "deterministic_size", "stochastic_size", "hidden_size", "horizon", "candidates", "iterations")
    check_positive(args, "min_std")
    if not 0 < args.top_k <= args.candidates:
        fail(f"--top-k must lie in [1, --candidates], got {args.top_k}")
    if args.seed_episodes < 0 or args.free_nats < 0 or args.exploration_noise < 0:
        fail("--seed-episodes, --free-nats and --exploration-noise must not be negative")
    obs_space, act_space = env_spaces(args.env_id)
    if not isinstance(act_space, gym.spaces.Box):
        fail(f"needs a Box action space, but {args.env_id} has {act_space}; use mcts.py or dqn.py")
    if not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all()):
        fail(f"needs finite action bounds, but {args.env_id} has {act_space}")
    if not args.from_pixels and (not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1):
        fail(f"needs flat Box observations (or --from-pixels), but {args.env_id} has {obs_space}")
    return checkpoint


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    generator = torch.Generator(device=run.device).manual_seed(args.seed)  # the planner's and the belief's samples
    # one env, `action_repeat` env steps per planned action
    env = make_env(args.env_id, args.from_pixels, run.video_dir if args.capture_video else None)
    act_space, obs_space = env.action_space, env.observation_space
    act_dim = act_space.shape[0]
    model = WorldModel(obs_space.shape, act_dim, args.from_pixels, args).to(run.device)
    if checkpoint:
        load_weights(run, model, checkpoint["model"])
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, eps=args.adam_eps)
    # a row per planned action and per episode's final observation: at most twice the run's planned actions (np.zeros
    # takes memory only for the rows written)
    capacity = min(args.buffer_size, 2 * -(-args.total_timesteps // args.action_repeat))
    rb = ReplayBuffer(capacity, obs_space.shape, obs_space.dtype, act_dim, args.seed)

    global_step, episodes_done, episode_return, episode_length = 0, 0, 0.0, 0
    total_timesteps = 0 if checkpoint else args.total_timesteps
    obs, _ = env.reset(seed=args.seed)
    h, s, prev_action = initial_belief(model, act_dim, run.device)
    # what a snapshot keeps, besides the loop's values, the RNGs of python, numpy and torch, and the episode statistics
    state = dict(model=model, optimizer=optimizer, rb=rb, generator=generator, env=env)
    global_step, episodes_done, episode_return, episode_length, obs, h, s, prev_action = resume(
        run,
        state,
        global_step=global_step,
        episodes_done=episodes_done,
        episode_return=episode_return,
        episode_length=episode_length,
        obs=obs,
        h=h,
        s=s,
        prev_action=prev_action,
    )
    while global_step < total_timesteps:
        # collect: update the belief with o_t, then act: random while seeding, else the CEM plan plus noise
        with torch.inference_mode():
            h, s = update_belief(model, h, s, prev_action, obs, args, run.device, generator)
            if episodes_done < args.seed_episodes:
                action = torch.rand(act_dim, generator=generator, device=run.device) * 2 - 1
            else:
                action = plan(model, h, s, args, act_dim, generator)
                noise = torch.randn(act_dim, generator=generator, device=run.device) * args.exploration_noise
                action = (action + noise).clamp(-1.0, 1.0)
        repeat = min(args.action_repeat, total_timesteps - global_step)  # the budget is exact
        next_obs, reward, done, steps = repeat_action(env, to_env_action(action, act_space.low, act_space.high), repeat)
        rb.add(obs, action.cpu().numpy(), reward, episodes_done)
        global_step += steps
        episode_return += reward
        episode_length += steps
        obs, prev_action = next_obs, action

        if done:
            rb.add(obs, np.zeros(act_dim), 0.0, episodes_done)  # o_T, from which h_T predicts the last step's reward
            log_episode(run, global_step, episode_return, episode_length)
            episodes_done += 1
            episode_return, episode_length = 0.0, 0
            obs, _ = env.reset()
            h, s, prev_action = initial_belief(model, act_dim, run.device)

            # update: after each episode (the seed episodes done), `train_steps` gradient steps on the ELBO
            if episodes_done >= args.seed_episodes and len(rb.chunk_starts(args.chunk_length)) > 0:
                for _ in range(args.train_steps):
                    batch = rb.sample(args.batch_size, args.chunk_length)
                    loss, parts = update_model(model, optimizer, batch, args, run.device)
                    check_finite(run, global_step, model_loss=loss, **parts)
                run.writer.add_scalar("losses/model_loss", loss.item(), global_step)
                for name, value in parts.items():
                    run.writer.add_scalar(f"losses/{name}", value.item(), global_step)
        log_progress(run, global_step)
        if evaluation_due(run):  # with --eval-frequency: the greedy policy as it trains
            log_evaluation(run, evaluate(model, args, act_space, args.eval_episodes, args.seed + 20_000, run.device))
        snapshot(
            run,
            state,
            global_step=global_step,
            episodes_done=episodes_done,
            episode_return=episode_return,
            episode_length=episode_length,
            obs=obs,
            h=h,
            s=s,
            prev_action=prev_action,
        )

    env.close()
    eval_returns = evaluate(
        model, args, act_space, args.eval_episodes, args.seed + 10_000, run.device, run.eval_video_dir
    )
    return finish_run(run, global_step, eval_returns, model={"model": model.state_dict()})


# Run plumbing: the same block in every torch script (tests/test_layout.py checks it); no algorithm below this line.
ALGO = os.path.basename(__file__).removesuffix(".py")


def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one line on stderr and exit status `status` (2: bad input, found before anything is written)."""
    print(f"{ALGO}.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def check_positive(args: Args, *names: str) -> None:
    """Fail unless every named argument is positive."""
    for name in names:
        if not getattr(args, name) > 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")


def check_unit_interval(args: Args, *names: str) -> None:
    """Fail unless every named argument lies in [0, 1]."""
    for name in names:
        if not 0.0 <= getattr(args, name) <= 1.0:
            fail(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")


def env_spaces(env_id: str, images: bool = False) -> tuple:
    """The observation and action spaces of a gymnasium env, or a one-line failure when it cannot be made or observes
    what the script cannot take: images (a 3-axis Box) for a script of flat vectors, vectors for one of `images`."""
    try:
        env = gym.make(env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {env_id!r}: {e}")
    spaces = env.observation_space, env.action_space
    env.close()
    observes_images = isinstance(spaces[0], gym.spaces.Box) and len(spaces[0].shape) == 3
    if observes_images and not images:
        fail(
            f"{env_id} observes images {spaces[0].shape}; this script takes flat vectors: for images, the scripts "
            "dqn_atari, rainbow_atari, ppo_atari (Discrete actions) or planet with --from-pixels (Box actions)"
        )
    if images and not observes_images:
        fail(
            f"{env_id} observes {spaces[0]}, not images; this script takes images: for vectors, the scripts dqn, ppo, …"
        )
    return spaces


def check_memory(nbytes: int, what: str) -> None:
    """Fail when `what` would take more memory than is available now (Linux's MemAvailable; elsewhere no check)."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return
    if nbytes > available:
        fail(f"{what} needs {nbytes / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB of memory available")


def check_common_args(args: Args) -> dict | None:
    """Check the arguments every script has: a positive budget and evaluation, and a checkpoint (if given) that this
    script saved for this env. Return the checkpoint's contents, or None."""
    budget = "total_timesteps" if hasattr(args, "total_timesteps") else "total_episodes"
    check_positive(args, "eval_episodes", *([budget] if args.checkpoint is None else []))
    if getattr(args, "eval_frequency", 0) < 0:
        fail(f"--eval-frequency must be 0 (only the final evaluation) or positive, got {args.eval_frequency}")
    if getattr(args, "snapshot_frequency", 0) < 0:
        fail(f"--snapshot-frequency must be 0 (never) or positive, got {args.snapshot_frequency}")
    if getattr(args, "resume", None):
        check_resume(args)
    if args.checkpoint is None:
        return None
    if not os.path.isfile(args.checkpoint):
        fail(f"checkpoint file not found: {args.checkpoint}")
    try:  # weights_only: loading a file never runs code from it
        checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:
        fail(f"cannot read checkpoint {args.checkpoint}: {type(e).__name__}")
    if not isinstance(checkpoint, dict) or checkpoint.get("algo") != ALGO:
        fail(f"{args.checkpoint} is not a checkpoint of {ALGO}.py")
    if checkpoint.get("env_id") != args.env_id:
        fail(f"{args.checkpoint} was saved for {checkpoint.get('env_id')}, not for --env-id {args.env_id}")
    return checkpoint


# Arguments that may differ between a run and its resumption: they change where and how a run is seen, not what it does.
FREE_ON_RESUME = ("resume", "snapshot_frequency", "track", "wandb_project_name", "wandb_entity", "log_dir")


def read_snapshot(run_dir: str) -> dict:
    """The snapshot of a run folder, or a one-line failure. Memory-mapped: the replay buffer is read as it is copied."""
    path = os.path.join(run_dir, "snapshot.pt")
    if not os.path.isfile(path):
        fail(f"--resume {run_dir}: no snapshot.pt there (was the run started with --snapshot-frequency?)")
    try:  # weights_only: loading a file never runs code from it
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        fail(f"--resume {run_dir}: cannot read snapshot.pt: {type(e).__name__}")


def check_resume(args: Args) -> None:
    """Fail unless --resume names an unfinished run folder of this script and env, run with the same arguments."""
    if args.checkpoint is not None:
        fail("--resume continues a training run; --checkpoint only evaluates: give one of them")
    if os.path.isfile(os.path.join(args.resume, "summary.json")):
        fail(f"--resume {args.resume}: that run has finished (summary.json); nothing to resume")
    snapshot = read_snapshot(args.resume)
    if not isinstance(snapshot, dict) or snapshot.get("algo") != ALGO:
        fail(
            f"--resume {args.resume}: a run of {snapshot.get('algo') if isinstance(snapshot, dict) else '?'}.py, "
            f"not of {ALGO}.py"
        )
    if snapshot.get("env_id") != args.env_id:
        fail(f"--resume {args.resume}: a run on {snapshot.get('env_id')}, not on --env-id {args.env_id}")
    saved = {**asdict(type(args)()), **snapshot["args"]}  # an argument added since the snapshot has its default
    changed = [
        f"--{name.replace('_', '-')} {value} (the run has {saved[name]})"
        for name, value in asdict(args).items()
        if name not in FREE_ON_RESUME and saved[name] != value
    ]
    if changed:
        fail(f"--resume {args.resume}: resume with the run's arguments; changed: {', '.join(changed)}")


@dataclass
class Run:
    """What the plumbing keeps of a run: its folder, TensorBoard writer, device, clock and last training returns."""

    args: Args
    name: str
    dir: str
    writer: SummaryWriter
    device: torch.device
    start_time: float
    last_step_time: float
    last_print: float
    recent_returns: collections.deque
    bar: tqdm | None = None
    counts_episodes: bool = False
    episodes: int = 0
    global_step: int = 0
    eval_step: int = 0
    previous_sigint: object = None
    interrupted_at: float = 0.0
    snapshot: dict | None = None
    snapshot_step: int = 0

    @property
    def video_dir(self) -> str:
        return os.path.join(self.dir, "videos")

    @property
    def eval_video_dir(self) -> str | None:
        return os.path.join(self.dir, "videos", "eval") if self.args.capture_video else None


def start_run(args: Args) -> Run:
    """Make the run folder, open TensorBoard (and W&B with --track), seed python, numpy and torch, pick the device."""
    try:  # Ctrl-C while the run is set up is ignored (a handler can be set in the main thread only)
        previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        previous_sigint = None
    snapshot = read_snapshot(args.resume) if getattr(args, "resume", None) else None
    if snapshot is not None:  # continue in the run's own folder
        run_dir = args.resume.rstrip("/")
        name = os.path.basename(run_dir)
        if os.path.exists(os.path.join(run_dir, "interrupted.json")):
            os.remove(os.path.join(run_dir, "interrupted.json"))
        # TensorBoard reads a folder's event files in the order of their names, which start with the second they were
        # made in: the resumed run's file must come after the stopped run's, so it starts in a later second
        made = [int(name.split(".")[3]) for name in os.listdir(run_dir) if name.startswith("events.out.tfevents.")]
        while time.time() < max(made, default=0) + 1:
            time.sleep(0.05)
    else:
        name, run_dir = make_run_dir(args)
    if args.track:
        import wandb

        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            sync_tensorboard=True,
            config=asdict(args),
            name=name,
            dir=run_dir,
            save_code=True,
        )
    if snapshot is not None:  # TensorBoard drops what the stopped run logged after its snapshot
        writer = SummaryWriter(run_dir, purge_step=snapshot["global_step"] + 1)
    else:
        writer = SummaryWriter(run_dir)
        writer.add_text(
            "hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in asdict(args).items())
        )
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_flush_denormal(True)  # on CPU, arithmetic on denormal floats (tiny Adam moments) is many times slower
    cuda = getattr(args, "cuda", False) and torch.cuda.is_available()  # a script without --cuda runs on the CPU
    now = time.time()
    run = Run(
        args,
        name,
        run_dir,
        writer,
        torch.device("cuda" if cuda else "cpu"),
        now,
        now,
        now,
        collections.deque(maxlen=10),
        snapshot=snapshot,
    )
    budget = next(name for name in ("total_timesteps", "total_episodes", "eval_episodes") if hasattr(args, name))
    run.counts_episodes = budget != "total_timesteps"
    run.bar = tqdm(
        total=0 if getattr(args, "checkpoint", None) else getattr(args, budget),
        unit="episode" if run.counts_episodes else "step",
        disable=not sys.stdout.isatty(),  # a bar for a person at a terminal; logs and pipes stay quiet
        file=sys.stdout,
        dynamic_ncols=True,
    )
    if previous_sigint is not None:  # from here on, Ctrl-C ends the run with one line and a marked folder
        run.previous_sigint = previous_sigint
        signal.signal(signal.SIGINT, lambda *_: interrupt(run))
    return run


def log_episode(run: Run, global_step: int, episode_return: float, episode_length: int) -> None:
    """Log one finished training episode."""
    run.writer.add_scalar("charts/episodic_return", episode_return, global_step)
    run.writer.add_scalar("charts/episodic_length", episode_length, global_step)
    run.recent_returns.append(float(episode_return))
    run.episodes += 1


def log_episodes(run: Run, global_step: int, infos: dict) -> None:
    """Log every episode that ended in this step of a vector env wrapped in gymnasium's RecordEpisodeStatistics."""
    if "_episode" in infos:
        for i in np.flatnonzero(infos["_episode"]):
            log_episode(run, global_step, infos["episode"]["r"][i], infos["episode"]["l"][i])


def check_finite(run: Run, global_step: int, **values) -> None:
    """Stop the run (exit 1) when a loss or estimate is NaN or infinite; what was logged so far stays readable."""
    values = {name: torch.as_tensor(value).item() for name, value in values.items()}
    if not np.isfinite(list(values.values())).all():
        close_run(run)
        listed = ", ".join(f"{name}={value}" for name, value in values.items())
        fail(f"{listed} at global step {global_step}: not finite; stopping", status=1)


def log_progress(run: Run, global_step: int, **extra: float) -> None:
    """Call after every training step: it keeps the training clock and, every 2 s, logs the SPS and moves the progress
    bar (steps or episodes of the budget, with the recent return and `extra`)."""
    now = run.last_step_time = time.time()
    run.global_step = global_step
    if now - run.last_print >= 2.0:
        run.last_print = now
        sps = int(global_step / (now - run.start_time))
        run.writer.add_scalar("charts/SPS", sps, global_step)
        recent = f"{np.mean(run.recent_returns):.1f}" if run.recent_returns else "-"
        run.bar.set_postfix(
            recent_return=recent, **{name: f"{value:.3g}" for name, value in extra.items()}, refresh=False
        )
        run.bar.update((run.episodes if run.counts_episodes else global_step) - run.bar.n)


def evaluation_due(run: Run) -> bool:
    """Call after `log_progress`: True when the run has passed a multiple of --eval-frequency (env steps, or episodes
    for an episode budget) since its last evaluation, short of the budget's end (the final evaluation is there)."""
    frequency = getattr(run.args, "eval_frequency", 0)
    if not frequency:
        return False
    done = run.episodes if run.counts_episodes else run.global_step
    budget = run.args.total_episodes if run.counts_episodes else run.args.total_timesteps
    if done >= budget or done // frequency == run.eval_step // frequency:
        return False
    run.eval_step = done
    return True


def log_evaluation(run: Run, eval_returns) -> None:
    """Log an evaluation made during training (`record_evaluation`); the training clock stops while it runs."""
    record_evaluation(run, run.global_step, eval_returns)
    now = time.time()
    run.start_time, run.last_step_time = run.start_time + now - run.last_step_time, now
    tqdm.write(f"global step {run.global_step}: eval_return_mean={np.mean(eval_returns):.1f}", file=sys.stdout)


def record_evaluation(run: Run, global_step: int, eval_returns) -> None:
    """Log each evaluation episode as eval/episodic_return at `global_step` (of runs × episodes, the first run's) and
    append a line to evaluations.jsonl: the step, the episodes trained and the returns' mean and std (what
    benchmarks/tune.py's pruner reads)."""
    for episode_return in np.atleast_2d(eval_returns)[0]:
        run.writer.add_scalar("eval/episodic_return", episode_return, global_step)
    line = {
        "global_step": global_step,
        "episodes": run.episodes,
        "return_mean": float(np.mean(eval_returns)),
        "return_std": float(np.std(eval_returns)),
    }
    with open(os.path.join(run.dir, "evaluations.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


def snapshot(run: Run, objects: dict, **values) -> None:
    """Call at the end of every training iteration, after `log_progress`. Every --snapshot-frequency env steps, write
    what the run needs to go on exactly as if it had not stopped: `objects` (networks, optimizers, buffers, RNGs, envs:
    see `state_of`), the loop's `values`, python's, numpy's and torch's RNGs, the episode statistics and the clock.
    Atomically (a temp file, then a rename): a run killed at any instant leaves its last complete snapshot."""
    frequency, global_step = getattr(run.args, "snapshot_frequency", 0), run.global_step
    if not frequency or global_step // frequency == run.snapshot_step // frequency:
        return
    run.snapshot_step = global_step
    run.writer.flush()  # what was logged up to here is on disk with the snapshot: a kill after it loses none of it
    data = {
        "algo": ALGO,
        "env_id": run.args.env_id,
        "args": asdict(run.args),
        "global_step": global_step,
        "run": {
            "episodes": run.episodes,
            "eval_step": run.eval_step,
            "recent_returns": list(run.recent_returns),
            "elapsed_s": run.last_step_time - run.start_time,
        },
        "rngs": {
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": state_of(np.random.get_state(legacy=False)),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        },
        "objects": {name: state_of(obj) for name, obj in objects.items()},
        "values": {name: state_of(value) for name, value in values.items()},
    }
    path, tmp_path = os.path.join(run.dir, "snapshot.pt"), os.path.join(run.dir, f"snapshot.pt.{os.getpid()}.tmp")
    with open(tmp_path, "wb") as f:
        torch.save(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_path, path)


def resume(run: Run, objects: dict, **values) -> tuple:
    """With --resume, load the snapshot into `objects` (in place) and return the loop's values it kept; else return
    `values` as they are. Call once everything is built, just before the training loop."""
    if run.snapshot is None:
        return tuple(values.values())
    saved, run.snapshot = run.snapshot, None
    for name, obj in objects.items():
        restore_state(obj, saved["objects"][name])
    python = saved["rngs"]["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    np.random.set_state(restore_state(None, saved["rngs"]["numpy"]))
    torch.set_rng_state(saved["rngs"]["torch"])
    if saved["rngs"]["cuda"]:
        torch.cuda.set_rng_state_all(saved["rngs"]["cuda"])
    run.episodes = saved["run"]["episodes"]
    run.recent_returns.extend(saved["run"]["recent_returns"])
    run.start_time = run.last_step_time = time.time() - saved["run"]["elapsed_s"]
    run.global_step = run.snapshot_step = saved["global_step"]
    # a snapshot taken before the plumbing kept the evaluation clock: the next evaluation at the next multiple
    run.eval_step = saved["run"].get("eval_step", run.episodes if run.counts_episodes else run.global_step)
    path = os.path.join(run.dir, "evaluations.jsonl")
    if os.path.exists(path):  # the evaluations the stopped run made after its snapshot are made again
        with open(path) as f:
            kept = [line for line in f if line.endswith("\n") and json.loads(line)["global_step"] <= run.global_step]
        with open(path, "w") as f:
            f.writelines(kept)
    print(f"resumed {run.dir} at global step {run.global_step}")
    return tuple(restore_state(value, saved["values"][name]) for name, value in values.items())


def state_of(obj):
    """`obj` as data that torch.load(weights_only=True) reads back: a module's or optimizer's state_dict, tensors,
    numpy arrays (as tensors), numpy and torch Generators (their states), gymnasium envs (`env_state`), numbers,
    lists and dicts of these, and the objects of this script's own classes (a replay buffer, running statistics)
    attribute by attribute. Anything else (a device, a space) is configuration, rebuilt by the script: None."""
    if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
        return {"state_dict": obj.state_dict()}
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, np.ndarray):
        return {"ndarray": torch.from_numpy(obj)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.random.Generator):
        return {"generator": obj.bit_generator.state}
    if isinstance(obj, torch.Generator):
        return {"torch_generator": obj.get_state()}
    if isinstance(obj, (gym.Env, gym.vector.VectorEnv)):
        return {"env": env_state(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple, collections.deque)):
        return {"tuple" if isinstance(obj, tuple) else "list": [state_of(item) for item in obj]}
    if isinstance(obj, dict):
        return {"dict": {key: state_of(value) for key, value in obj.items()}}
    if type(obj).__module__ == __name__:
        return {"object": {name: state_of(value) for name, value in vars(obj).items()}}
    return None


def restore_state(obj, data):
    """The inverse of `state_of`: load `data` into `obj` in place where it can be (modules, optimizers, tensors,
    arrays of the same shape, generators, envs, this script's objects) and return the restored value."""
    if not isinstance(data, dict):
        if isinstance(obj, torch.Tensor) and isinstance(data, torch.Tensor):
            if obj.is_inference():  # made under torch.inference_mode: not writable, replaced
                return data.to(obj.device)
            with torch.no_grad():
                return obj.copy_(data)
        return obj if data is None else data
    if "state_dict" in data:
        obj.load_state_dict(data["state_dict"])
    elif "ndarray" in data:
        array = data["ndarray"].numpy()
        if isinstance(obj, np.ndarray) and obj.shape == array.shape and obj.dtype == array.dtype:
            obj[...] = array
            return obj
        return array.copy()
    elif "generator" in data:
        obj = obj if isinstance(obj, np.random.Generator) else np.random.default_rng()
        obj.bit_generator.state = data["generator"]
    elif "torch_generator" in data:
        obj.set_state(data["torch_generator"])
    elif "env" in data:
        set_env_state(obj, data["env"])
    elif "list" in data or "tuple" in data:
        current = list(obj) if isinstance(obj, (list, tuple, collections.deque)) else []  # each item's template
        saved = data.get("list", data.get("tuple"))
        items = [restore_state(current[i] if i < len(current) else None, item) for i, item in enumerate(saved)]
        if isinstance(obj, collections.deque):
            return collections.deque(items, obj.maxlen)
        return tuple(items) if "tuple" in data else items
    elif "dict" in data:
        return {key: restore_state((obj or {}).get(key), value) for key, value in data["dict"].items()}
    elif "object" in data:
        for name, value in data["object"].items():
            setattr(obj, name, restore_state(getattr(obj, name, None), value))
    return obj


def env_layers(env) -> list:
    """An env or vector env and its wrappers (for a SyncVectorEnv, each of its envs with theirs), outside in."""
    layers = []
    while env is not None:
        layers.append(env)
        for sub_env in getattr(env, "envs", []) if isinstance(env, gym.vector.SyncVectorEnv) else []:
            layers.extend(env_layers(sub_env))
        env = getattr(env, "env", None)
    return layers


def env_state(env) -> list:
    """The state of an env and its wrappers: each layer's plain attributes (numbers and arrays: the physical state
    of a classic-control env, step counters, episode statistics), its RNG and, for a MuJoCo env, the simulator's full
    integration state (mujoco.mj_getState). What these do not hold (a renderer, a video recorder) is not restored."""
    states = []
    for layer in env_layers(env):
        state = {
            name: state_of(value)
            for name, value in vars(layer).items()
            if value is None or isinstance(value, (bool, int, float, np.ndarray, np.generic, np.random.Generator))
        }
        if type(layer).__module__.startswith("gymnasium.envs.mujoco"):
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            physics = np.empty(mujoco.mj_stateSize(layer.model, spec))
            mujoco.mj_getState(layer.model, layer.data, physics, spec)
            state["mujoco_state"] = state_of(physics)
            # and the body positions of the last step, which some envs (Ant, Humanoid) read before they step
            state["mujoco_positions"] = state_of(np.concatenate([layer.data.xpos, layer.data.xipos]))
        states.append(state)
    return states


def set_env_state(env, states: list) -> None:
    """Load `env_state`'s output into an env built the same way."""
    for layer, state in zip(env_layers(env), states, strict=True):
        for name, value in state.items():
            if name == "mujoco_state":
                import mujoco

                mujoco.mj_setState(
                    layer.model, layer.data, value["ndarray"].numpy(), mujoco.mjtState.mjSTATE_INTEGRATION
                )
            elif name == "mujoco_positions":
                layer.data.xpos[:], layer.data.xipos[:] = np.split(value["ndarray"].numpy(), 2)
            else:
                setattr(layer, name, restore_state(getattr(layer, name, None), value))


def finish_run(run: Run, global_step: int, eval_returns: list, model: dict | None = None) -> dict:
    """Save the model (with --save-model), log the final evaluation at the last step, write summary.json atomically
    and return it."""
    args, wall_time = run.args, run.last_step_time - run.start_time
    if args.save_model and model is not None:
        torch.save({"algo": ALGO, "env_id": args.env_id, **model}, os.path.join(run.dir, f"{args.exp_name}.pt"))
    record_evaluation(run, global_step, eval_returns)
    close_run(run)
    summary = {
        "algo": ALGO,
        "env_id": args.env_id,
        "seed": args.seed,
        "total_timesteps": global_step,
        "wall_time_s": wall_time,
        "sps": global_step / wall_time if wall_time > 0 else 0.0,
        "eval_return_mean": float(np.mean(eval_returns)),
        "eval_return_std": float(np.std(eval_returns)),
        "eval_episodes": args.eval_episodes,
        "final_train_return": float(np.mean(run.recent_returns)) if run.recent_returns else None,
        "args": asdict(args),
    }
    write_summary(run.dir, summary)
    for name in os.listdir(run.dir):  # the run is complete: what it keeps is the summary, not its snapshots
        if name.startswith("snapshot.pt"):
            os.remove(os.path.join(run.dir, name))
    print(
        f"eval_return_mean={summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f}; run folder {run.dir}"
    )
    if args.track:
        import wandb

        wandb.finish()
    return summary


def load_weights(run: Run, network: nn.Module, state: dict) -> None:
    """Load saved weights into `network`; weights of other shapes (saved with other settings) end the run with one
    line, its folder removed."""
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        close_run(run)
        shutil.rmtree(run.dir)
        details = [line.strip() for line in str(e).splitlines()]
        fail(f"{run.args.checkpoint} does not fit this network (saved with other settings?): {details[-1]}")


def close_run(run: Run) -> None:
    """Close the progress bar (at the last step) and TensorBoard, and give Ctrl-C back its meaning before the run."""
    run.bar.update((run.episodes if run.counts_episodes else run.global_step) - run.bar.n)
    run.bar.close()
    run.writer.close()
    if run.previous_sigint is not None:
        signal.signal(signal.SIGINT, run.previous_sigint)


def interrupt(run: Run) -> NoReturn:
    """Ctrl-C: keep what was logged, mark the folder (interrupted.json) and stop with one line and exit status 130."""
    if run.interrupted_at and time.time() - run.interrupted_at < 5.0:
        return  # the first Ctrl-C is being handled (later ones retry, should its exit have been swallowed)
    first, run.interrupted_at = not run.interrupted_at, time.time()
    if first:
        run.previous_sigint = None  # this handler stays until the process ends ...
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)  # ... and then a Ctrl-C cannot cut the exit short
        sys.unraisablehook = lambda dropped, hook=sys.unraisablehook: exit_if_dropped(dropped, hook)
        close_run(run)
        with open(os.path.join(run.dir, "interrupted.json"), "w") as f:
            json.dump({"global_step": run.global_step, "wall_time_s": time.time() - run.start_time}, f)
    if not first:
        raise SystemExit(130)
    kept = f"what was logged is kept in {run.dir}"
    if run.snapshot_step:
        kept += f"; continue from step {run.snapshot_step} with --resume {run.dir}"
    fail(f"interrupted at global step {run.global_step}; {kept}", status=130)


def exit_if_dropped(dropped, hook) -> None:
    """Python prints and drops an exception raised in a weakref callback or a `__del__` (a Ctrl-C can arrive in one):
    an exit dropped there is made at once, the folder already marked."""
    if dropped.exc_type is not SystemExit:
        return hook(dropped)
    sys.stdout.flush()
    os._exit(dropped.exc_value.code)


def make_run_dir(args: Args) -> tuple:
    """Create `{log_dir}/{env_id}__{exp_name}__{seed}__{unix_time}`; should two runs start in the same second with the
    same name, the later one takes the next free second."""
    try:
        os.makedirs(args.log_dir, exist_ok=True)
        unix_time = int(time.time())
        while True:
            run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{unix_time}"
            try:
                os.mkdir(os.path.join(args.log_dir, run_name))
                return run_name, os.path.join(args.log_dir, run_name)
            except FileExistsError:
                unix_time += 1
    except OSError as e:
        fail(f"cannot make a run folder in --log-dir {args.log_dir}: {e.strerror}")


def write_summary(run_dir: str, summary: dict) -> None:
    """Write summary.json atomically: to a temp file in the same folder, then rename."""
    tmp_path = os.path.join(run_dir, "summary.json.tmp")
    with open(tmp_path, "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp_path, os.path.join(run_dir, "summary.json"))


if __name__ == "__main__":
    train(tyro.cli(Args))
