"""Rainbow: DQN with six extensions combined, each of which a flag switches off.

Hessel et al. (2018), "Rainbow: Combining Improvements in Deep Reinforcement Learning", AAAI. Its components:
- distributional (`--distributional`, Bellemare et al. 2017, c51.py): the network predicts a distribution over a fixed
  support of `n_atoms` returns; the projected distributional Bellman target is fitted by cross-entropy. Off: the
  network predicts Q(s, a) and the loss is the squared TD error;
- n-step returns (`--n-step`, Sutton 1988): the target is Σ_{k<n} γ^k r_{t+k} + γ^n Q(s_{t+n}, ·), on fewer steps
  where the episode ended first; 1 turns it off;
- double Q-learning (`--double`, van Hasselt et al. 2016): the online network picks a* = argmax_a Q(s_{t+n}, a), the
  target network evaluates it. Off: the target network does both;
- prioritized replay (`--prioritized`, Schaul et al. 2016): transitions are sampled with probability P(i) ∝ p_i^α,
  p_i the last loss of transition i (new ones get the largest priority seen), from a sum tree; the bias this causes
  is corrected by importance-sampling weights (N P(i))^(−β) / max_j w_j with β annealed from `priority_beta` to 1;
- dueling heads (`--dueling`, Wang et al. 2016): Q(s, a) = V(s) + A(s, a) − mean_a A(s, a), per atom before the
  softmax when distributional;
- noisy networks (`--noisy`, Fortunato et al. 2018): the head's linear layers are y = (μ_w + σ_w ⊙ ε_w) x + μ_b + σ_b
  ⊙ ε_b with factorized Gaussian noise and learned σ, which replaces ε-greedy exploration; evaluation uses μ alone.
  Off: ε-greedy with ε annealed linearly.
Everything else is dqn.py: target network, training rounds, learning rate annealed to 0, defaults tuned on
CartPole-v1. A time-limit truncation is not a termination: an n-step transition cut by a time limit still
bootstraps from the observation the episode was cut off in.

With every component on, 4 of 5 seeds reach the CartPole bar of 300 in 80k steps and 2 of them 500
(tests/test_rainbow.py lists them); on the failing seed, turning off either the noisy networks or the 3-step
returns reached 500.

Spaces: Box observations, Discrete actions (for Box actions use ppo_continuous.py).
Run: python algos/rainbow.py --env-id CartPole-v1
"""

# Imports
import collections
import json
import math
import os
import random
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

    # Algorithm specific arguments
    env_id: str = "CartPole-v1"
    """the gymnasium id of the env (defaults tuned on CartPole-v1)"""
    total_timesteps: int = 80_000
    """env steps, all envs together"""
    num_envs: int = 1
    """the number of vectorized envs"""
    eval_episodes: int = 10
    """episodes of the final greedy evaluation"""
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


# Environment, network, replay buffer and the algorithm's math
def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one clear line on stderr and exit status `status` (2: bad input)."""
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def check_args(args: Args) -> None:
    """Reject bad input before anything is written."""
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        fail(f"checkpoint file not found: {args.checkpoint}")
    if args.checkpoint is None and args.total_timesteps <= 0:
        fail(f"--total-timesteps must be positive, got {args.total_timesteps}")
    for name in ("num_envs", "eval_episodes", "buffer_size", "batch_size", "train_frequency", "gradient_steps"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.n_atoms < 2 or not args.v_min < args.v_max:
        fail(f"the support needs --n-atoms ≥ 2 and --v-min < --v-max, got {args.n_atoms}, {args.v_min}, {args.v_max}")
    if args.target_network_frequency <= 0:
        fail(f"--target-network-frequency must be positive, got {args.target_network_frequency}")
    if args.n_step <= 0:
        fail(f"--n-step must be positive, got {args.n_step}")
    if args.priority_alpha < 0 or not 0 <= args.priority_beta <= 1:
        fail(
            f"need --priority-alpha ≥ 0 and --priority-beta in [0, 1], got {args.priority_alpha}, {args.priority_beta}"
        )
    try:
        env = gym.make(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(f"rainbow.py needs a Discrete action space, but {args.env_id} has {act_space}; use ppo_continuous.py")
    if not isinstance(obs_space, gym.spaces.Box):
        fail(f"rainbow.py needs Box observations, but {args.env_id} has {obs_space}; tabular methods fit Discrete ones")


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
    importance-sampling weights. Rows live in numpy; only a sampled minibatch becomes tensors."""

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

    def update_priorities(self, idx: np.ndarray, losses: np.ndarray) -> None:
        priorities = np.abs(losses) + 1e-6  # p_i > 0: every transition keeps a chance of replay
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


def linear_schedule(start: float, end: float, duration: float, t: int) -> float:
    """A value that moves linearly from start to end over `duration` steps, then stays at end."""
    return end + (start - end) * max(0.0, 1.0 - t / duration)


def true_next_obs(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each env's step led to. With same-step autoreset, `next_obs` of an env whose episode just ended
    is already the first observation of its next episode; the observation the episode ended in is in `final_obs`."""
    if "_final_obs" not in infos:
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


def project_distribution(next_probs, returns, discounts, atoms: torch.Tensor) -> torch.Tensor:
    """The categorical projection Φ of the n-step distributional Bellman target onto the support (Bellemare et al.,
    Alg. 1). Each atom z_j of the next state's distribution (probability p_j, rows of next_probs) moves to
    Tz_j = R + discount · z_j (discount = γ^m, 0 when terminal), clipped to [v_min, v_max]; its mass is split between
    the two nearest atoms z_l ≤ Tz_j ≤ z_u in proportion to closeness (all of it to z_l when Tz_j is an atom).
    Returns (batch, atoms)."""
    v_min, v_max, n_atoms = atoms[0], atoms[-1], len(atoms)
    delta_z = (v_max - v_min) / (n_atoms - 1)
    tz = (returns[:, None] + discounts[:, None] * atoms[None, :]).clamp(v_min, v_max)
    b = ((tz - v_min) / delta_z).clamp(0, n_atoms - 1)  # fractional index of Tz_j on the support
    # (the clamp keeps a NaN reward's index in range, so that the NaN reaches the loss and stops the run)
    lower, upper = b.floor().long().clamp(0, n_atoms - 1), b.ceil().long().clamp(0, n_atoms - 1)
    target = torch.zeros_like(next_probs)
    target.scatter_add_(1, lower, next_probs * (upper - b + (upper == lower)))  # m_l += p_j (u − b_j)
    target.scatter_add_(1, upper, next_probs * (b - lower))  # m_u += p_j (b_j − l)
    return target


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


def make_run_dir(args: Args) -> tuple:
    """Create `{log_dir}/{env_id}__{exp_name}__{seed}__{unix_time}`; should two runs start in the same second with the
    same name, the later one takes the next free second."""
    os.makedirs(args.log_dir, exist_ok=True)
    unix_time = int(time.time())
    while True:
        run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{unix_time}"
        try:
            os.mkdir(os.path.join(args.log_dir, run_name))
            return run_name, os.path.join(args.log_dir, run_name)
        except FileExistsError:
            unix_time += 1


def write_summary(run_dir: str, summary: dict) -> None:
    """Write summary.json atomically: to a temp file in the same folder, then rename."""
    tmp_path = os.path.join(run_dir, "summary.json.tmp")
    with open(tmp_path, "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp_path, os.path.join(run_dir, "summary.json"))


# Training
def train(args: Args) -> dict:
    check_args(args)
    run_name, run_dir = make_run_dir(args)
    if args.track:
        import wandb

        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            sync_tensorboard=True,
            config=asdict(args),
            name=run_name,
            dir=run_dir,
            save_code=True,
        )
    writer = SummaryWriter(run_dir)
    writer.add_text(
        "hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in asdict(args).items())
    )

    # seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_flush_denormal(True)  # on CPU, arithmetic on denormal floats (tiny Adam moments) is many times slower
    rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env setup: same-step autoreset, so that no stored transition crosses a reset (see `true_next_obs`)
    video_dir = os.path.join(run_dir, "videos")
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, i, args.capture_video, video_dir) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_actions = int(envs.single_action_space.n)

    atoms = torch.linspace(args.v_min, args.v_max, args.n_atoms, device=device)  # the support z_1 … z_N
    q_network = QNetwork(obs_dim, n_actions, atoms, args).to(device)
    if args.checkpoint:
        q_network.load_state_dict(torch.load(args.checkpoint, map_location=device)["q_network"])
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    target_network = QNetwork(obs_dim, n_actions, atoms, args).to(device)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(args.buffer_size, obs_dim, device, args.seed, args.priority_alpha if args.prioritized else None)
    n_step_collector = NStepCollector(args.n_step, args.gamma, args.num_envs)

    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, dtype=np.int64)
    recent_returns = collections.deque(maxlen=10)
    global_step, updates = 0, 0
    num_iterations = 0 if args.checkpoint else args.total_timesteps // args.num_envs
    start_time = last_print = time.time()
    obs, _ = envs.reset(seed=args.seed)
    for _ in range(num_iterations):
        global_step += args.num_envs
        # ALGO LOGIC: greedy actions of a freshly perturbed noisy network, or ε-greedy ones, each env on its own
        epsilon = 0.0
        if not args.noisy:
            epsilon = linear_schedule(
                args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
            )
        explore = rng.random(args.num_envs) < epsilon
        if explore.all():
            actions = rng.integers(n_actions, size=args.num_envs)
        else:
            q_network.reset_noise()
            with torch.inference_mode():
                q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device))
            actions = q_values.argmax(dim=1).cpu().numpy()
            if explore.any():
                actions[explore] = rng.integers(n_actions, size=int(explore.sum()))

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        # log every finished episode
        episode_returns += rewards
        episode_lengths += 1
        for i in np.flatnonzero(terminations | truncations):
            writer.add_scalar("charts/episodic_return", episode_returns[i], global_step)
            writer.add_scalar("charts/episodic_length", episode_lengths[i], global_step)
            recent_returns.append(float(episode_returns[i]))
            episode_returns[i], episode_lengths[i] = 0.0, 0

        # store the n-step transitions this step completed, s' the observation the last step really led to
        real_next_obs = true_next_obs(next_obs, infos)
        for transition in n_step_collector.push(obs, actions, rewards, real_next_obs, terminations, truncations):
            rb.add(*transition)
        obs = next_obs

        # ALGO LOGIC: training
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (
                1.0 - (global_step - args.num_envs) / args.total_timesteps
            ) * args.learning_rate
        if global_step > args.learning_starts:
            for _ in range(steps_crossed(global_step, args.num_envs, args.train_frequency) * args.gradient_steps):
                beta = linear_schedule(args.priority_beta, 1.0, args.total_timesteps, global_step)  # β → 1
                b_obs, b_actions, b_returns, b_next_obs, b_discounts, b_weights, b_idx = rb.sample(
                    args.batch_size, beta
                )
                batch_range = torch.arange(args.batch_size, device=device)
                q_network.reset_noise()
                target_network.reset_noise()
                with torch.no_grad():
                    # a* = argmax_a Q(s', a) by the online network (double) or the target network
                    selector = q_network if args.double else target_network
                    next_actions = selector(b_next_obs).argmax(dim=1)
                    if args.distributional:
                        next_probs = target_network.log_probs(b_next_obs).exp()[batch_range, next_actions]
                        # ALGO LOGIC: m = Φ (R + γ^n z) under p(s', a*), the projected n-step target distribution
                        target = project_distribution(next_probs, b_returns, b_discounts, atoms)
                    else:
                        # ALGO LOGIC: y = R + γ^n Q_target(s', a*), the n-step TD target
                        target = b_returns + b_discounts * target_network(b_next_obs)[batch_range, next_actions]
                if args.distributional:
                    log_probs = q_network.log_probs(b_obs)[batch_range, b_actions]
                    sample_losses = -(target * log_probs).sum(dim=-1)  # cross-entropy −Σ_i m_i log p_i(s, a)
                else:
                    q_taken = q_network(b_obs)[batch_range, b_actions]  # Q(s, a)
                    sample_losses = (q_taken - target) ** 2  # the squared TD error
                loss = (b_weights * sample_losses).mean()  # importance-weighted (weights 1 without priorities)
                if not torch.isfinite(loss):
                    writer.close()
                    envs.close()
                    fail(f"loss became {loss.item()} at global step {global_step}; stopping", status=1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if args.prioritized:  # p_i ← the transition's new loss
                    rb.update_priorities(b_idx, sample_losses.detach().cpu().numpy())
                updates += 1
                if updates % 100 == 0:
                    writer.add_scalar("losses/loss", loss.item(), global_step)
                    with torch.no_grad():
                        mean_max_q = q_network(b_obs).max(dim=1).values.mean().item()
                    writer.add_scalar("losses/q_values", mean_max_q, global_step)
                    writer.add_scalar("charts/beta", beta, global_step)

            # θ⁻ ← τ θ + (1 − τ) θ⁻ every `target_network_frequency` steps
            if steps_crossed(global_step, args.num_envs, args.target_network_frequency):
                with torch.no_grad():
                    for target_param, param in zip(target_network.parameters(), q_network.parameters(), strict=True):
                        target_param.lerp_(param, args.tau)

        if time.time() - last_print >= 2.0:
            last_print = time.time()
            sps = int(global_step / (last_print - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)
            recent = np.mean(recent_returns) if recent_returns else float("nan")
            exploration = "noisy" if args.noisy else f"epsilon={epsilon:.3f}"
            print(f"step={global_step} sps={sps} {exploration} recent_return={recent:.1f}", flush=True)

    wall_time = time.time() - start_time
    envs.close()
    if args.save_model:
        torch.save({"q_network": q_network.state_dict()}, os.path.join(run_dir, f"{args.exp_name}.pt"))

    q_network.eval()  # noisy layers switch their noise off: the greedy policy of the means μ
    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns = evaluate(q_network, args.env_id, args.eval_episodes, args.seed + 10_000, device, eval_video_dir)
    for i, episode_return in enumerate(eval_returns):
        writer.add_scalar("eval/episodic_return", episode_return, i)
    writer.close()

    summary = {
        "algo": "rainbow",
        "env_id": args.env_id,
        "seed": args.seed,
        "total_timesteps": global_step,
        "wall_time_s": wall_time,
        "sps": global_step / wall_time if wall_time > 0 else 0.0,
        "eval_return_mean": float(np.mean(eval_returns)),
        "eval_return_std": float(np.std(eval_returns)),
        "eval_episodes": args.eval_episodes,
        "final_train_return": float(np.mean(recent_returns)) if recent_returns else None,
        "args": asdict(args),
    }
    write_summary(run_dir, summary)
    print(
        f"eval_return_mean={summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f}; run folder {run_dir}"
    )
    if args.track:
        wandb.finish()
    return summary


if __name__ == "__main__":
    train(tyro.cli(Args))
