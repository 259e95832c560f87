"""Rainbow: DQN with six extensions combined, each of which a flag switches off.

Hessel et al. (2018), "Rainbow: Combining Improvements in Deep Reinforcement Learning", AAAI. Its components:
- distributional (`--distributional`, Bellemare et al. 2017, c51.py): the network predicts a distribution over a fixed
  support of `n_atoms` returns; the projected distributional Bellman target is fitted by cross-entropy. Off: the
  network predicts Q(s, a) and the loss is the squared TD error;
- n-step returns (`--n-step`, Sutton 1988): the target is Σ_{k<n} γ^k r_{t+k} + γ^n Q(s_{t+n}, ·), on fewer steps
  where the episode ended first; 1 turns it off;
- double Q-learning (`--double`, van Hasselt et al. 2016): the online network picks a* = argmax_a Q(s_{t+n}, a), the
  target network evaluates it. Off: the target network does both;
- prioritized replay (`--prioritized`, Schaul et al. 2016): transitions are sampled with probability P(i) ∝ p_i^α from
  a sum tree, p_i the magnitude |δ_i| of transition i's last TD error (distributional: KL(m ‖ p) between its last
  projected target m and its predicted distribution p, as in the Rainbow paper; the cross-entropy would add the
  target's entropy H(m) and so favour transitions whose targets are spread out); new ones get the largest priority
  seen. The bias this causes is corrected by importance-sampling weights (N P(i))^(−β) / max_j w_j with β annealed
  from `priority_beta` to 1;
- dueling heads (`--dueling`, Wang et al. 2016): Q(s, a) = V(s) + A(s, a) − mean_a A(s, a), per atom before the
  softmax when distributional;
- noisy networks (`--noisy`, Fortunato et al. 2018): the head's linear layers are y = (μ_w + σ_w ⊙ ε_w) x + μ_b + σ_b
  ⊙ ε_b with factorized Gaussian noise and learned σ, which replaces ε-greedy exploration; evaluation uses μ alone.
  Off: ε-greedy with ε annealed linearly.
Everything else is dqn.py: target network, training rounds, learning rate annealed to 0, defaults tuned on
CartPole-v1. A time-limit truncation is not a termination: an n-step transition cut by a time limit still
bootstraps from the observation the episode was cut off in.

Spaces: Box observations, Discrete actions (for Box actions use ppo_continuous.py).
Run: python algos/rainbow.py --env-id CartPole-v1
Benchmarks: benchmarks/results/quick/README.md (CartPole), benchmarks/results/classic/README.md, and the ablation of
each component in benchmarks/results/rainbow_ablation/README.md.
What was tried and measured: benchmarks/NOTES.md#rainbowpy
"""

# Imports
import atexit
import collections
import json
import math
import os
import random
import shutil
import signal
import sys
import time
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
    """record videos of the first env and of the evaluation episodes into the run folder"""
    save_model: bool = False
    """write the trained weights to `{run folder}/{exp_name}.pt`"""
    checkpoint: str | None = None
    """path of a saved model: load it and only evaluate"""
    log_dir: str = "runs"
    """parent folder of the run folder"""
    snapshot_frequency: int = 0
    """every this many env steps, write a snapshot to the run folder that --resume continues from (0: never)"""
    resume: str | None = None
    """a run folder with a snapshot: continue that run from it, with the same arguments"""

    # Algorithm specific arguments
    env_id: str = "CartPole-v1"
    """the gymnasium id of the env (defaults tuned on CartPole-v1)"""
    total_timesteps: int = 80_000
    """env steps, all envs together"""
    num_envs: int = 1
    """the number of vectorized envs"""
    eval_episodes: int = 10
    """episodes of the final greedy evaluation"""
    eval_frequency: int = 0
    """evaluate the greedy policy every N env steps, logged and written to evaluations.jsonl (0: only at the end)"""
    learning_rate: float = 1e-3
    """the Adam learning rate (at the start, when annealed)"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over training"""
    buffer_size: int = 100_000
    """the replay buffer capacity"""
    gamma: float = 0.99
    """the discount factor γ"""
    tau: float = 1.0
    """the target network update rate (1.0: hard copy)"""
    target_network_frequency: int = 256
    """env steps between target network updates"""
    batch_size: int = 128
    """the minibatch size sampled from the replay buffer"""
    start_e: float = 1.0
    """ε at the start of training (with --no-noisy)"""
    end_e: float = 0.04
    """ε at the end of the exploration phase (with --no-noisy)"""
    exploration_fraction: float = 0.16
    """fraction of `total_timesteps` over which ε falls from `start_e` to `end_e` (with --no-noisy)"""
    learning_starts: int = 1_000
    """env steps before the first gradient step"""
    train_frequency: int = 256
    """env steps between training rounds"""
    gradient_steps: int = 128
    """gradient steps in each training round"""
    distributional: bool = True
    """predict the return distribution (C51) rather than its mean"""
    n_atoms: int = 101
    """the number of atoms of the return distribution's support"""
    v_min: float = -100.0
    """the smallest return of the support"""
    v_max: float = 100.0
    """the largest return of the support"""
    n_step: int = 3
    """the n of the n-step return (1: one-step targets)"""
    double: bool = True
    """double Q-learning: the online network picks the next action, the target network evaluates it"""
    prioritized: bool = True
    """prioritized replay from a sum tree (off: uniform sampling)"""
    priority_alpha: float = 0.5
    """the exponent α of the priorities: P(i) ∝ p_i^α"""
    priority_beta: float = 0.4
    """the importance-sampling exponent β at the start, annealed linearly to 1 over training"""
    dueling: bool = True
    """dueling heads: Q = V + A − mean A"""
    noisy: bool = True
    """noisy linear layers in the head for exploration (off: ε-greedy)"""
    noisy_sigma0: float = 0.5
    """σ_0 of the factorized noisy layers: σ starts at σ_0 / √(inputs)"""


# The algorithm: environment, noisy dueling distributional network, prioritized n-step replay, the update
def make_env(env_id: str, idx: int, capture_video: bool, video_dir: str):
    def thunk():
        if capture_video and idx == 0:
            env = gym.make(env_id, render_mode="rgb_array")
            env = gym.wrappers.RecordVideo(env, video_dir)
        else:
            env = gym.make(env_id)
        if len(env.observation_space.shape) > 1:
            env = gym.wrappers.FlattenObservation(env)
        return env

    return thunk


class NoisyLinear(nn.Module):
    """A linear layer with factorized Gaussian noise (Fortunato et al. 2018, section 3.2):
    w = μ_w + σ_w ⊙ f(ε_out) f(ε_in)ᵀ and b = μ_b + σ_b ⊙ f(ε_out), with ε ~ N(0, 1) and f(x) = sgn(x) √|x|.
    `reset_noise()` draws new ε; in eval mode (`.eval()`) the layer is the plain linear layer of the means μ."""

    def __init__(self, in_features: int, out_features: int, sigma0: float):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)  # μ ~ U(−1/√p, 1/√p), σ = σ_0/√p
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_noise()

    @staticmethod
    def _f(x: torch.Tensor) -> torch.Tensor:
        return x.sign() * x.abs().sqrt()

    def reset_noise(self) -> None:
        self.eps_in.copy_(self._f(torch.randn(self.in_features, device=self.eps_in.device)))
        self.eps_out.copy_(self._f(torch.randn(self.out_features, device=self.eps_out.device)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        return F.linear(x, weight, self.bias_mu + self.bias_sigma * self.eps_out)


class QNetwork(nn.Module):
    """A torso and a head of `n_outputs` values per action (atoms' logits when distributional, else 1: Q itself).
    With `dueling` the head is a value stream and an advantage stream, combined as V + A − mean_a A per output;
    with `noisy` the head's layers are NoisyLinear. `log_probs(x)` is (batch, actions, atoms) (distributional only);
    `forward(x)` is Q(s, a), (batch, actions)."""

    def __init__(self, obs_dim: int, n_actions: int, atoms: torch.Tensor, args: Args):
        super().__init__()
        self.n_actions, self.distributional, self.dueling = n_actions, args.distributional, args.dueling
        self.n_outputs = len(atoms) if args.distributional else 1
        self.register_buffer("atoms", atoms)

        def linear(in_features: int, out_features: int) -> nn.Module:
            if args.noisy:
                return NoisyLinear(in_features, out_features, args.noisy_sigma0)
            return nn.Linear(in_features, out_features)

        self.torso = nn.Sequential(nn.Linear(obs_dim, 120), nn.ReLU())
        self.advantage = nn.Sequential(linear(120, 84), nn.ReLU(), linear(84, n_actions * self.n_outputs))
        if args.dueling:
            self.value = nn.Sequential(linear(120, 84), nn.ReLU(), linear(84, self.n_outputs))
        self.noisy_layers = [module for module in self.modules() if isinstance(module, NoisyLinear)]

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, actions, n_outputs): the atoms' logits, or Q."""
        h = self.torso(x)
        advantage = self.advantage(h).view(-1, self.n_actions, self.n_outputs)
        if not self.dueling:
            return advantage
        value = self.value(h).view(-1, 1, self.n_outputs)
        return value + advantage - advantage.mean(dim=1, keepdim=True)  # Q = V + A − mean_a A

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.outputs(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.distributional:
            return (self.log_probs(x).exp() * self.atoms).sum(dim=-1)
        return self.outputs(x).squeeze(-1)

    def reset_noise(self) -> None:
        for layer in self.noisy_layers:
            layer.reset_noise()


class SumTree:
    """A binary tree over `capacity` leaves holding priorities, each inner node the sum of its two children, so that
    setting a priority and finding the leaf where a running sum crosses a value both take O(log capacity).
    Node 1 is the root, node i has children 2i and 2i + 1, and leaf j is node `size + j` (size: a power of two)."""

    def __init__(self, capacity: int):
        self.size = 1 << max(1, (capacity - 1).bit_length())
        self.tree = np.zeros(2 * self.size)

    def total(self) -> float:
        return float(self.tree[1])

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.tree[self.size + idx]

    def update(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaves `idx` to `priorities` (the last one wins for a repeated index), then refresh their ancestors."""
        nodes = self.size + np.asarray(idx)
        self.tree[nodes] = priorities
        while nodes[0] > 1:  # all leaves are on one level, so every node of `nodes` is on one level too
            nodes = nodes // 2  # (a repeated parent is written twice with the same sum: harmless)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def find(self, values: np.ndarray) -> np.ndarray:
        """For each value v in [0, total): the leaf j with Σ_{i<j} p_i ≤ v < Σ_{i≤j} p_i."""
        nodes = np.ones(len(values), dtype=np.int64)
        values = np.array(values, dtype=np.float64)
        while nodes[0] < self.size:  # all leaves are on the same level
            left = 2 * nodes
            go_right = values >= self.tree[left]
            values -= self.tree[left] * go_right
            nodes = left + go_right
        return nodes - self.size


class ReplayBuffer:
    """A FIFO of n-step transitions (s, a, R, s', discount) in preallocated arrays; at capacity the oldest rows are
    overwritten. Sampled uniformly, or, with `alpha` given, in proportion to priority^α from a sum tree, with
    importance-sampling weights. Rows live in numpy; only a sampled minibatch becomes tensors. (Not dqn.py's buffer:
    it stores the n-step return and discount for r and terminated, and keeps the priorities and their sum tree.)"""

    def __init__(self, capacity: int, obs_dim: int, device: torch.device, seed: int, alpha: float | None = None):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.returns = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)  # γ^m, or 0 where the episode terminated
        self.capacity, self.pos, self.size, self.device = capacity, 0, 0, device
        self.rng = np.random.default_rng(seed)
        self.alpha = alpha
        self.tree = SumTree(capacity) if alpha is not None else None
        self.max_priority = 1.0

    def add(self, obs, action, n_step_return, next_obs, discount) -> None:
        """Store one transition; with priorities, at the largest priority seen so far, so that it is replayed soon."""
        self.obs[self.pos], self.actions[self.pos], self.returns[self.pos] = obs, action, n_step_return
        self.next_obs[self.pos], self.discounts[self.pos] = next_obs, discount
        if self.tree is not None:
            self.tree.update(np.array([self.pos]), np.array([self.max_priority**self.alpha]))
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, beta: float = 1.0):
        """(obs, actions, returns, next_obs, discounts, weights, indices) of `batch_size` rows: uniform draws with
        weights 1, or one draw from each of `batch_size` equal slices of the priority mass (stratified sampling) with
        weights w_i = (N P(i))^(−β) / max_j w_j."""
        if self.tree is None:
            idx = self.rng.integers(self.size, size=batch_size)
            weights = np.ones(batch_size, dtype=np.float32)
        else:
            total = self.tree.total()
            values = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
            idx = np.minimum(self.tree.find(values), self.size - 1)  # (rounding can only overshoot the last row)
            probs = self.tree.get(idx) / total
            weights = (self.size * probs) ** (-beta)
            weights = (weights / weights.max()).astype(np.float32)
        arrays = (self.obs, self.actions, self.returns, self.next_obs, self.discounts)
        batch = tuple(torch.from_numpy(a[idx]).to(self.device) for a in arrays)
        return batch + (torch.from_numpy(weights).to(self.device), idx)

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        """Set p_i of the rows `idx` (|δ_i|, or the cross-entropy) and so their sampling weight p_i^α."""
        priorities = np.abs(priorities) + 1e-6  # p_i > 0: every transition keeps a chance of replay
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(idx, priorities**self.alpha)


class NStepCollector:
    """Turns each env's one-step transitions into n-step ones (s_t, a_t, R, s_{t+m}, discount) with
    R = Σ_{k<m} γ^k r_{t+k} and discount = γ^m, m = n, or fewer where the episode ended first; discount = 0 where it
    terminated (a truncated episode bootstraps from the observation it was cut off in)."""

    def __init__(self, n: int, gamma: float, num_envs: int):
        self.n, self.gamma = n, gamma
        self.pending = [collections.deque() for _ in range(num_envs)]  # (s, a, r) not yet n steps old

    def push(self, obs, actions, rewards, next_obs, terminations, truncations) -> list:
        """Take one step of every env (next_obs: the observations the steps really led to); return the n-step
        transitions it completes."""
        completed = []
        for i, pending in enumerate(self.pending):
            pending.append((obs[i], actions[i], rewards[i]))
            if terminations[i] or truncations[i]:  # the episode ended: every pending transition ends here
                while pending:
                    completed.append(self._transition(pending, next_obs[i], bool(terminations[i])))
                    pending.popleft()
            elif len(pending) == self.n:
                completed.append(self._transition(pending, next_obs[i], False))
                pending.popleft()
        return completed

    def _transition(self, pending, last_next_obs, terminated: bool) -> tuple:
        n_step_return = sum(self.gamma**k * r for k, (_, _, r) in enumerate(pending))
        discount = 0.0 if terminated else self.gamma ** len(pending)
        obs, action, _ = pending[0]
        return obs, action, n_step_return, last_next_obs, discount


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    """ε falls linearly from start_e to end_e over `duration` steps, then stays at end_e (from the start if 0)."""
    if duration <= 0:
        return end_e
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def true_next_obs(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each env's step led to. With same-step autoreset, `next_obs` of an env whose episode just ended
    is already the first observation of its next episode; the observation the episode ended in is in `final_obs`."""
    if "_final_obs" not in infos:
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


def td_target(returns, next_values, discounts):
    """y = R + discount · v', discount = γ^m, or 0 where the episode terminated (a truncated transition bootstraps):
    the n-step target of v' = Q_target(s', a*), or, distributional, of each atom z_j (Tz_j, with R and the discount
    given as columns)."""
    return returns + discounts * next_values


def project_distribution(next_probs, target_atoms, atoms: torch.Tensor) -> torch.Tensor:
    """The categorical projection Φ of the distributional Bellman target onto the support (Bellemare et al., Alg. 1).
    The mass p_j of each atom (rows of next_probs) sits at Tz_j (rows of target_atoms), clipped to [v_min, v_max];
    it is split between the two nearest atoms z_l ≤ Tz_j ≤ z_u in proportion to closeness (all of it to z_l when Tz_j
    is an atom). Returns (batch, atoms)."""
    v_min, v_max, n_atoms = atoms[0], atoms[-1], len(atoms)
    delta_z = (v_max - v_min) / (n_atoms - 1)
    tz = target_atoms.clamp(v_min, v_max)
    b = ((tz - v_min) / delta_z).clamp(0, n_atoms - 1)  # fractional index of Tz_j on the support
    # (the clamp keeps a NaN reward's index in range, so that the NaN reaches the loss and stops the run)
    lower, upper = b.floor().long().clamp(0, n_atoms - 1), b.ceil().long().clamp(0, n_atoms - 1)
    target = torch.zeros_like(next_probs)
    target.scatter_add_(1, lower, next_probs * (upper - b + (upper == lower)))  # m_l += p_j (u − b_j)
    target.scatter_add_(1, upper, next_probs * (b - lower))  # m_u += p_j (b_j − l)
    return target


def td_loss(q_network, target_network, batch: tuple, double: bool):
    """The importance-weighted loss of a minibatch (weights 1 without priorities), each transition's new priority and
    Q(s, a). Distributional: the cross-entropy −Σ_i m_i log p_i(s, a) against m = Φ(R + γ^m z) under the target
    network's distribution at (s', a*), with priority KL(m ‖ p(s, a)) (the Rainbow paper's); else the squared TD error
    δ² against y = R + γ^m Q_target(s', a*), with priority |δ| (Schaul et al.: P(i) ∝ |δ_i|^α, not δ_i^2α). a* is the
    argmax of the online network (double) or of the target network."""
    obs, actions, returns, next_obs, discounts, weights = batch
    rows, atoms = torch.arange(len(actions), device=actions.device), q_network.atoms
    with torch.no_grad():
        next_actions = (q_network if double else target_network)(next_obs).argmax(dim=1)
        if q_network.distributional:
            next_probs = target_network.log_probs(next_obs).exp()[rows, next_actions]
            target = project_distribution(next_probs, td_target(returns[:, None], atoms, discounts[:, None]), atoms)
        else:
            target = td_target(returns, target_network(next_obs)[rows, next_actions], discounts)
    if q_network.distributional:
        log_probs = q_network.log_probs(obs)[rows, actions]
        sample_losses = -(target * log_probs).sum(dim=-1)
        priorities = sample_losses + torch.xlogy(target, target).sum(dim=-1)  # KL(m ‖ p) = cross-entropy − H(m)
        q_taken = (log_probs.exp() * atoms).sum(dim=-1)
    else:
        q_taken = q_network(obs)[rows, actions]
        sample_losses = (q_taken - target) ** 2
        priorities = (q_taken - target).abs()
    return (weights * sample_losses).mean(), priorities.detach(), q_taken


def update_target(target_network, q_network, tau: float) -> None:
    """θ⁻ ← τ θ + (1 − τ) θ⁻ (τ = 1: a hard copy)."""
    with torch.no_grad():
        for target_param, param in zip(target_network.parameters(), q_network.parameters(), strict=True):
            target_param.lerp_(param, tau)


def epsilon_greedy(q_network, obs: np.ndarray, epsilon: float, n_actions: int, rng, device) -> np.ndarray:
    """argmax_a Q(s, a) per env, replaced by a uniformly random action with probability ε in each env."""
    explore = rng.random(len(obs)) < epsilon
    with torch.inference_mode():
        actions = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)).argmax(dim=1).cpu().numpy()
    if explore.any():
        actions[explore] = rng.integers(n_actions, size=int(explore.sum()))
    return actions


def steps_crossed(global_step: int, num_envs: int, interval: int) -> int:
    """How many multiples of `interval` the step counter passed on its way from global_step − num_envs."""
    return global_step // interval - (global_step - num_envs) // interval


def evaluate(q_network, env_id: str, episodes: int, seed: int, device, video_dir: str | None = None) -> list:
    """Greedy returns of `episodes` episodes on a fresh env."""
    env = gym.make(env_id, render_mode="rgb_array" if video_dir else None)
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda _: True)
    if len(env.observation_space.shape) > 1:
        env = gym.wrappers.FlattenObservation(env)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, episode_return = False, 0.0
        while not done:
            with torch.inference_mode():
                q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(int(q_values.argmax(dim=1).item()))
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    env.close()
    return returns


# Training
def check_args(args: Args) -> dict | None:
    """Reject bad input before anything is written; return the checkpoint to evaluate, if one is given."""
    checkpoint = check_common_args(args)
    if args.batch_size > args.buffer_size:
        fail(f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}")
    if checkpoint is None and args.learning_starts >= args.total_timesteps:
        fail(f"--learning-starts {args.learning_starts} is not below --total-timesteps {args.total_timesteps}")
    check_positive(args, "num_envs", "buffer_size", "batch_size", "train_frequency", "gradient_steps")
    check_positive(args, "target_network_frequency", "learning_rate", "n_step")
    check_unit_interval(args, "gamma", "tau", "start_e", "end_e", "exploration_fraction", "priority_beta")
    if args.n_atoms < 2 or not args.v_min < args.v_max:
        fail(f"the support needs --n-atoms ≥ 2 and --v-min < --v-max, got {args.n_atoms}, {args.v_min}, {args.v_max}")
    if args.priority_alpha < 0:
        fail(f"--priority-alpha must be ≥ 0, got {args.priority_alpha}")
    obs_space, act_space = env_spaces(args.env_id)
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(f"needs a Discrete action space, but {args.env_id} has {act_space}; use ppo_continuous.py")
    if not isinstance(obs_space, gym.spaces.Box):
        fail(f"needs Box observations, but {args.env_id} has {obs_space}; tabular methods fit Discrete ones")
    row_bytes = 2 * 4 * int(np.prod(obs_space.shape)) + 8 + 4 + 4  # obs, next obs, action, reward, termination
    check_memory(args.buffer_size * row_bytes, f"a replay buffer of --buffer-size {args.buffer_size}")
    return checkpoint


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    rng = np.random.default_rng(args.seed)
    # same-step autoreset, so that no stored transition crosses a reset (see `true_next_obs`)
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, i, args.capture_video, run.video_dir) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_actions = int(envs.single_action_space.n)

    atoms = torch.linspace(args.v_min, args.v_max, args.n_atoms, device=run.device)  # the support z_1 … z_N
    q_network = QNetwork(obs_dim, n_actions, atoms, args).to(run.device)
    if checkpoint:
        load_weights(run, q_network, checkpoint["q_network"])
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    target_network = QNetwork(obs_dim, n_actions, atoms, args).to(run.device)
    target_network.load_state_dict(q_network.state_dict())
    alpha = args.priority_alpha if args.prioritized else None
    rb = ReplayBuffer(args.buffer_size, obs_dim, run.device, args.seed, alpha)
    n_step = NStepCollector(args.n_step, args.gamma, args.num_envs)

    global_step, updates = 0, 0
    num_iterations = 0 if checkpoint else args.total_timesteps // args.num_envs
    obs, _ = envs.reset(seed=args.seed)
    # what a snapshot keeps, besides the loop's values, the RNGs of python, numpy and torch, and the episode statistics
    state = dict(
        q_network=q_network,
        target_network=target_network,
        optimizer=optimizer,
        rb=rb,
        n_step=n_step,
        rng=rng,
        envs=envs,
    )
    global_step, updates, obs = resume(run, state, global_step=global_step, updates=updates, obs=obs)
    for _ in range(global_step // args.num_envs, num_iterations):
        global_step += args.num_envs
        # collect: one step in every env, greedy under fresh noise (--noisy) or ε-greedy; store the n-step transitions
        # it completed, s' the state the last of their steps led to
        epsilon = 0.0
        if not args.noisy:
            epsilon = linear_schedule(
                args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
            )
        q_network.reset_noise()  # (without --noisy there is no noise to redraw)
        actions = epsilon_greedy(q_network, obs, epsilon, n_actions, rng, run.device)
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        log_episodes(run, global_step, infos)
        for transition in n_step.push(obs, actions, rewards, true_next_obs(next_obs, infos), terminations, truncations):
            rb.add(*transition)
        obs = next_obs

        # update: rounds of gradient steps on the (importance-weighted) loss, new priorities, then the target network
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (
                1.0 - (global_step - args.num_envs) / args.total_timesteps
            ) * args.learning_rate
        if global_step > args.learning_starts:
            for _ in range(steps_crossed(global_step, args.num_envs, args.train_frequency) * args.gradient_steps):
                beta = 1.0 + (args.priority_beta - 1.0) * max(0.0, 1.0 - global_step / args.total_timesteps)  # β → 1
                *batch, idx = rb.sample(args.batch_size, beta)
                q_network.reset_noise()
                target_network.reset_noise()
                loss, priorities, q_taken = td_loss(q_network, target_network, batch, args.double)
                check_finite(run, global_step, loss=loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if args.prioritized:
                    rb.update_priorities(idx, priorities.cpu().numpy())
                updates += 1
                if updates % 100 == 0:
                    run.writer.add_scalar("losses/loss", loss.item(), global_step)
                    run.writer.add_scalar("losses/q_values", q_taken.mean().item(), global_step)
                    run.writer.add_scalar("charts/beta", beta, global_step)
            if steps_crossed(global_step, args.num_envs, args.target_network_frequency):
                update_target(target_network, q_network, args.tau)
        log_progress(run, global_step, **({} if args.noisy else {"epsilon": epsilon}))
        if evaluation_due(run):  # with --eval-frequency: the greedy policy of the means μ as it trains
            q_network.eval()
            log_evaluation(run, evaluate(q_network, args.env_id, args.eval_episodes, args.seed + 20_000, run.device))
            q_network.train()
        snapshot(run, state, global_step=global_step, updates=updates, obs=obs)

    envs.close()
    q_network.eval()  # noisy layers switch their noise off: the greedy policy of the means μ
    eval_returns = evaluate(
        q_network, args.env_id, args.eval_episodes, args.seed + 10_000, run.device, run.eval_video_dir
    )
    return finish_run(run, global_step, eval_returns, model={"q_network": q_network.state_dict()})


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
