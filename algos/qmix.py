"""QMIX: monotonic value factorisation for cooperative multi-agent reinforcement learning.

Rashid et al. (2018), "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent Reinforcement Learning", ICML.
Every agent a acts greedily on its own utility Q_a(τ_a, u_a), computed from its own observations τ_a by one network
that all agents share (a one-hot agent id tells them apart; with `--use-rnn` a GRU carries the agent's history, its
hidden state reset at each episode's start). A mixing network combines the chosen utilities into the joint value
Q_tot(τ, u, s) = f_s(Q_1, …, Q_n). Its weights are produced by hypernetworks of the global state s and made
non-negative, so ∂Q_tot/∂Q_a ≥ 0: the joint action that maximises Q_tot is every agent's own greedy action, which lets
the agents act apart (decentralised execution) while Q_tot is trained on the team reward (centralised training). The
TD target is double Q: y = r + γ (1 − terminated) Q_tot⁻(τ', argmax_u' Q(τ', u'), s'), the online agents choosing
u' and the target agents and the target mixer evaluating it. Episodes are stored whole and trained on in batches;
the agents explore ε-greedily, each on its own, with ε annealed linearly. A time limit is not a termination: the last
step of an episode cut by its time limit bootstraps from the observations it was cut off in.

The defaults (γ = 0.95, a target refresh every 2000 steps, the learning rate annealed to 0; tuned on simple_spread)
keep the mixer's gain ∂Q_tot/∂Q_a (logged as `losses/mixer_gain`) from drifting up: the hypernetworks' outputs pass
through |·|, every optimizer step moves them, and once the gain reaches tens the greedy actions flip from update to
update. The drift grows with the learning rate (a longer run needs a smaller one), the networks' width, the scale of
the values, about r/(1 − γ), and the size of the state: bounded observations and states are mapped onto [−1, 1]. On
Level-Based Foraging keep γ well below 1 (food does not come back, so collecting it a step later costs only 1 − γ).
What was tried and measured: benchmarks/NOTES.md#qmixpy

Returns: the team reward is the sum of the agents' rewards (the EPyMARL convention), and so is every logged return:
`charts/episodic_return` and `eval/episodic_return` are team returns, summed over agents and steps; each agent's own
return is logged as `charts/episodic_return_<agent>`. A greedy evaluation of `eval_episodes` episodes runs every
`eval_frequency` env steps and once at the end; each of its episodes is logged as `eval/episodic_return` at the step
it ran after (the final evaluation at the last step), so the curve shows the greedy policy as it trains.

Envs (`--env-id`), cooperative tasks with Discrete actions:
- the Multi-Particle Environments of the `mpe2` package by module name, through PettingZoo's parallel API:
  `simple_spread_v3` (3 agents cover 3 landmarks; 25-step episodes; the default; the defaults are tuned on it);
- Level-Based Foraging of `lbforaging` by gymnasium id, e.g. `Foraging-8x8-2p-3f-v3` (a gymnasium env with a Tuple
  entry per agent, behind the same parallel API by the adapter `TupleParallelEnv`; its state is the agents'
  observations concatenated). Any gymnasium env with Tuple observation and action spaces and a list of rewards works
  the same way. Agents' observations of different sizes are zero-padded to the largest.
For continuous actions use maddpg.py.
Run: python algos/qmix.py --env-id simple_spread_v3
Benchmarks: benchmarks/results/quick/README.md (simple_spread, 200k steps) and benchmarks/results/marl/README.md (1M
steps on simple_spread, 2M on Foraging-8x8-2p-3f-v3).
"""

# Imports
import atexit
import collections
import importlib
import importlib.util
import json
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
    """record videos of training episodes and of the final evaluation episodes into the run folder"""
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
    env_id: str = "simple_spread_v3"
    """an mpe2 module name or a gymnasium id with one Tuple entry per agent (defaults tuned on simple_spread_v3)"""
    total_timesteps: int = 200_000
    """env steps (one step: every agent acts once)"""
    eval_episodes: int = 10
    """episodes of each greedy evaluation"""
    eval_frequency: int = 10_000
    """evaluate the greedy policy every N env steps, logged and written to evaluations.jsonl (0: only at the end)"""
    learning_rate: float = 5e-4
    """the Adam learning rate (at the start, when annealed)"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over training"""
    buffer_size: int = 5_000
    """the replay buffer capacity, in episodes"""
    batch_size: int = 32
    """episodes in a minibatch"""
    gamma: float = 0.95
    """the discount factor γ"""
    tau: float = 1.0
    """the target networks' update rate (1.0: hard copy)"""
    target_network_frequency: int = 2_000
    """env steps between target network updates"""
    start_e: float = 1.0
    """ε at the start of training"""
    end_e: float = 0.05
    """ε at the end of the exploration phase"""
    exploration_fraction: float = 0.25
    """fraction of `total_timesteps` over which ε falls from `start_e` to `end_e`"""
    learning_starts: int = 5_000
    """env steps of ε-greedy play before the first gradient step"""
    gradient_steps: int = 1
    """gradient steps after each finished episode"""
    hidden_dim: int = 64
    """width of the agent network"""
    use_rnn: bool = False
    """a GRU over each agent's history (else a feed-forward agent that sees only its current observation)"""
    mixing_embed_dim: int = 32
    """width of the mixing network's hidden layer"""
    hypernet_embed_dim: int = 64
    """width of the hypernetworks that produce the mixing weights"""
    double_q: bool = True
    """choose the target's next actions with the online agents (double Q-learning), else with the target agents"""
    standardize_rewards: bool = False
    """standardize the team reward by the running mean and standard deviation of the rewards seen so far"""
    max_grad_norm: float = 10.0
    """the maximum norm of the gradients"""


# The algorithm: environments, the agent network, the mixer, the episode buffer, the QMIX loss and update, acting
class TupleParallelEnv:
    """A gymnasium env with one Tuple entry per agent (observations, actions; rewards as a list), such as Level-Based
    Foraging, behind PettingZoo's parallel API. The global state is the agents' observations concatenated."""

    def __init__(self, env: gym.Env):
        self.env = env
        multi_agent = isinstance(env.action_space, gym.spaces.Tuple)  # check_args turns away envs that are not
        self.possible_agents = [f"agent_{i}" for i in range(len(env.action_space))] if multi_agent else []
        self.agents: list = []
        self.max_episode_steps = env.spec.max_episode_steps or getattr(env.unwrapped, "_max_episode_steps", None)

    def observation_space(self, agent: str):
        return self.env.observation_space[self.possible_agents.index(agent)]

    def action_space(self, agent: str):
        return self.env.action_space[self.possible_agents.index(agent)]

    def reset(self, seed: int | None = None):
        obs, _ = self.env.reset(seed=seed)
        self.agents, self.last_obs = list(self.possible_agents), obs
        return dict(zip(self.agents, obs, strict=True)), {agent: {} for agent in self.agents}

    def step(self, actions: dict):
        obs, rewards, terminated, truncated, _ = self.env.step(tuple(actions[agent] for agent in self.possible_agents))
        field = getattr(self.env.unwrapped, "field", None)
        if terminated and field is not None and field.sum() > 0:
            # Level-Based Foraging reports its time limit as a termination: with food left, the episode was cut short
            terminated, truncated = False, True
        self.last_obs = obs
        agents = self.possible_agents
        result = (
            dict(zip(agents, obs, strict=True)),
            dict(zip(agents, (float(r) for r in rewards), strict=True)),
            {agent: bool(terminated) for agent in agents},
            {agent: bool(truncated) for agent in agents},
            {agent: {} for agent in agents},
        )
        if terminated or truncated:
            self.agents = []
        return result

    def state(self) -> np.ndarray:
        return np.concatenate([np.asarray(o, dtype=np.float32).ravel() for o in self.last_obs])

    @property
    def state_space(self) -> gym.spaces.Box:
        spaces = self.env.observation_space
        return gym.spaces.Box(
            np.concatenate([s.low.ravel() for s in spaces]), np.concatenate([s.high.ravel() for s in spaces])
        )

    @property
    def unwrapped(self) -> gym.Env:
        return self.env.unwrapped

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


def is_mpe(env_id: str) -> bool:
    return env_id.isidentifier() and importlib.util.find_spec(f"mpe2.{env_id}") is not None


def make_env(env_id: str, render: bool = False):
    """A PettingZoo parallel env: an mpe2 module by name, else a gymnasium env with a Tuple entry per agent."""
    if is_mpe(env_id):
        module = importlib.import_module(f"mpe2.{env_id}")
        if not hasattr(module, "parallel_env"):  # a folder of mpe2, such as simple_tag for simple_tag_v3
            raise gym.error.Error(f"mpe2 has no env {env_id}; its envs carry a version, such as {env_id}_v3")
        return module.parallel_env(continuous_actions=False, render_mode="rgb_array" if render else None)
    import lbforaging  # noqa: F401  (registers the Foraging-* ids)

    render_mode = {"render_mode": "rgb_array"} if render else {}
    return TupleParallelEnv(gym.make(env_id, disable_env_checker=True, **render_mode))


def episode_limit(env) -> int:
    """The most steps an episode of `env` can last (the episode buffer's time axis)."""
    limit = env.max_episode_steps if isinstance(env, TupleParallelEnv) else getattr(env.unwrapped, "max_cycles", None)
    if not limit:
        fail("the env has no time limit (max_cycles or max_episode_steps), and whole episodes are stored")
    return int(limit)


def unit_scaling(spaces: list, dim: int) -> tuple:
    """(center, half_width), two (len(spaces), dim) arrays that map the bounded entries of each Box onto [−1, 1];
    unbounded entries, and the zero padding past a space's size, pass unchanged."""
    center = np.zeros((len(spaces), dim), dtype=np.float32)
    half_width = np.ones((len(spaces), dim), dtype=np.float32)
    for i, space in enumerate(spaces):
        low, high = space.low.ravel().astype(np.float64), space.high.ravel().astype(np.float64)
        bounded = np.isfinite(low) & np.isfinite(high) & (high > low)
        low, high = np.where(bounded, low, -1.0), np.where(bounded, high, 1.0)  # [−1, 1] itself: left unchanged
        center[i, : len(low)], half_width[i, : len(low)] = (high + low) / 2, (high - low) / 2
    return center, half_width


def stack_obs(obs: dict, agents: list, scaling: tuple) -> np.ndarray:
    """The agents' observations as one (n_agents, obs_dim) array, each zero-padded to obs_dim and scaled by
    `unit_scaling` (bounded entries onto [−1, 1])."""
    center, half_width = scaling
    out = np.zeros(center.shape, dtype=np.float32)
    for i, agent in enumerate(agents):
        o = np.asarray(obs[agent], dtype=np.float32).ravel()
        out[i, : len(o)] = o
    return (out - center) / half_width


class AgentNetwork(nn.Module):
    """Q_a(τ_a, ·): the utilities of one agent's actions, from its observation and one-hot id (and, with a GRU, from
    its history through the hidden state h). One network serves all agents."""

    def __init__(self, input_dim: int, hidden_dim: int, n_actions: int, use_rnn: bool):
        super().__init__()
        self.use_rnn, self.hidden_dim = use_rnn, hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim) if use_rnn else nn.Linear(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None) -> tuple:
        x = F.relu(self.fc1(inputs))
        hidden = self.rnn(x, hidden) if self.use_rnn else F.relu(self.rnn(x))
        return self.fc2(hidden), hidden


def nonnegative(weights: torch.Tensor) -> torch.Tensor:
    """|w|: the mixing weights are made non-negative, which makes Q_tot monotonic in every Q_a (Rashid et al. eq. 5)."""
    return weights.abs()


class Mixer(nn.Module):
    """Q_tot = w₂ᵀ elu(W₁ᵀ Q + b₁) + V(s): a one-hidden-layer network over the agents' chosen utilities Q whose
    weights W₁, w₂ (made non-negative) and biases b₁, V come from hypernetworks of the global state s."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int, hypernet_dim: int):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_dim), nn.ReLU(), nn.Linear(hypernet_dim, n_agents * embed_dim)
        )
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet_dim), nn.ReLU(), nn.Linear(hypernet_dim, embed_dim))
        self.hyper_v = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """agent_qs (..., n_agents), states (..., state_dim) -> Q_tot (...)."""
        lead = agent_qs.shape[:-1]
        w1 = nonnegative(self.hyper_w1(states)).view(*lead, self.n_agents, self.embed_dim)
        b1 = self.hyper_b1(states).view(*lead, 1, self.embed_dim)
        hidden = F.elu(agent_qs.unsqueeze(-2) @ w1 + b1)  # (..., 1, embed)
        w2 = nonnegative(self.hyper_w2(states)).view(*lead, self.embed_dim, 1)
        return (hidden @ w2).view(*lead) + self.hyper_v(states).view(*lead)


class EpisodeBuffer:
    """Whole episodes in preallocated arrays padded to the episode limit T, sampled uniformly; at capacity the oldest
    episodes are overwritten. Step t of an episode holds its observations o_t and state s_t (t = 0 … T, the last the
    ones the episode ended in), action u_t, team reward r_t, termination flag, and `filled` = 1 for steps that
    happened (0 for the padding after a shorter episode, which the loss masks out)."""

    def __init__(self, capacity: int, limit: int, n_agents: int, obs_dim: int, state_dim: int, seed: int):
        self.obs = np.zeros((capacity, limit + 1, n_agents, obs_dim), dtype=np.float32)
        self.states = np.zeros((capacity, limit + 1, state_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, limit, n_agents), dtype=np.int64)
        self.rewards = np.zeros((capacity, limit), dtype=np.float32)
        self.terminations = np.zeros((capacity, limit), dtype=np.float32)
        self.filled = np.zeros((capacity, limit), dtype=np.float32)
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.rng = np.random.default_rng(seed)

    def add(self, obs, states, actions, rewards, terminations) -> None:
        """Store one episode of L steps: obs (L+1, n_agents, obs_dim), states (L+1, state_dim), actions
        (L, n_agents), rewards (L,), terminations (L,)."""
        length, i = len(actions), self.pos
        for array in (self.obs, self.states, self.actions, self.rewards, self.terminations, self.filled):
            array[i] = 0
        self.obs[i, : length + 1], self.states[i, : length + 1] = obs, states
        self.actions[i, :length], self.rewards[i, :length] = actions, rewards
        self.terminations[i, :length], self.filled[i, :length] = terminations, 1.0
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device) -> tuple:
        """(obs, states, actions, rewards, terminations, filled) of `batch_size` episodes drawn uniformly with
        replacement, cut to the longest of them."""
        idx = self.rng.integers(self.size, size=batch_size)
        length = int(self.filled[idx].sum(axis=1).max())
        arrays = (
            self.obs[idx, : length + 1],
            self.states[idx, : length + 1],
            self.actions[idx, :length],
            self.rewards[idx, :length],
            self.terminations[idx, :length],
            self.filled[idx, :length],
        )
        return tuple(torch.from_numpy(a).to(device) for a in arrays)


def agent_inputs(obs: torch.Tensor) -> torch.Tensor:
    """Each agent's observation followed by its one-hot id: (..., n_agents, obs_dim) -> (..., n_agents, obs_dim + n)."""
    n_agents = obs.shape[-2]
    ids = torch.eye(n_agents, device=obs.device).expand(*obs.shape[:-1], n_agents)
    return torch.cat([obs, ids], dim=-1)


def unroll(agent: AgentNetwork, inputs: torch.Tensor) -> torch.Tensor:
    """Q_a(τ_a^t, ·) at every step of a batch of episodes: inputs (B, T, n_agents, in) -> (B, T, n_agents, actions).
    A GRU starts each episode from a zero hidden state and carries it forward step by step."""
    batch, steps, n_agents, _ = inputs.shape
    if not agent.use_rnn:
        return agent(inputs, None)[0]
    hidden, q_values = None, []
    for t in range(steps):
        q, hidden = agent(inputs[:, t].reshape(batch * n_agents, -1), hidden)
        q_values.append(q.view(batch, n_agents, -1))
    return torch.stack(q_values, dim=1)


def qmix_targets(rewards, terminations, next_q_online, next_q_target, next_states, target_mixer, gamma, double_q):
    """y_t = r_t + γ (1 − terminated_t) Q_tot⁻(τ_{t+1}, u*, s_{t+1}) with u* = argmax_u Q(τ_{t+1}, u) of the online
    agents (double Q), or of the target agents. A step cut by a time limit is not terminated and bootstraps."""
    chooser = next_q_online if double_q else next_q_target
    next_actions = chooser.argmax(dim=-1, keepdim=True)
    next_q = next_q_target.gather(-1, next_actions).squeeze(-1)  # (B, T, n_agents)
    return rewards + gamma * (1.0 - terminations) * target_mixer(next_q, next_states)


def masked_td_loss(q_tot: torch.Tensor, targets: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """The mean squared TD error over the steps that happened (padding after an episode's end counts for nothing)."""
    return (((q_tot - targets) * filled) ** 2).sum() / filled.sum()


class RunningStd:
    """The running variance of a stream of numbers (Chan et al.'s parallel update), for reward standardization."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, values: np.ndarray) -> None:
        batch_mean, batch_var, n = float(np.mean(values)), float(np.var(values)), len(values)
        delta, total = batch_mean - self.mean, self.count + n
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total


def qmix_loss(agent, mixer, target_agent, target_mixer, batch: tuple, gamma: float, double_q: bool) -> tuple:
    """The masked TD loss (Q_tot(τ, u, s) − y)² of a batch of episodes against the double-Q target, where
    Q_tot = mixer(Q_1(τ_1, u_1), …, Q_n(τ_n, u_n); s); returns it with Q_tot and the chosen utilities Q_a(τ_a, u_a)."""
    obs, states, actions, rewards, terminations, filled = batch
    inputs = agent_inputs(obs)
    q_online = unroll(agent, inputs)  # (B, T + 1, n_agents, n_actions)
    q_taken = q_online[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # Q_a(τ_a, u_a)
    q_tot = mixer(q_taken, states[:, :-1])
    with torch.no_grad():
        next_q_target = unroll(target_agent, inputs)[:, 1:]
        targets = qmix_targets(
            rewards, terminations, q_online[:, 1:].detach(), next_q_target, states[:, 1:], target_mixer, gamma, double_q
        )
    return masked_td_loss(q_tot, targets, filled), q_tot, q_taken


def update(agent, mixer, target_agent, target_mixer, optimizer, batch: tuple, args: Args, reward_std, gain: bool):
    """One gradient step of the agent network and the mixer together on `qmix_loss` (with --standardize-rewards, the
    team rewards standardized by `reward_std`; the gradients clipped to max_grad_norm). Returns what to log: the loss,
    the mean Q_tot, the gradient norm and, if `gain`, the mixer's mean gain ∂Q_tot/∂Q_a over the steps that happened,
    the quantity that grows before a collapse."""
    obs, states, actions, rewards, terminations, filled = batch
    if args.standardize_rewards:
        rewards = (rewards - reward_std.mean) / np.sqrt(reward_std.var + 1e-8)
    batch = (obs, states, actions, rewards, terminations, filled)
    loss, q_tot, q_taken = qmix_loss(agent, mixer, target_agent, target_mixer, batch, args.gamma, args.double_q)
    stats = {"td_loss": loss, "q_tot": (q_tot * filled).sum() / filled.sum()}
    if gain:
        (gains,) = torch.autograd.grad(q_tot, q_taken, filled, retain_graph=True)
        stats["mixer_gain"] = gains.sum() / filled.sum() / q_taken.shape[-1]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    stats["grad_norm"] = nn.utils.clip_grad_norm_(params, args.max_grad_norm)
    optimizer.step()
    return stats


def update_target(target_network, network, tau: float) -> None:
    """θ⁻ ← τ θ + (1 − τ) θ⁻ (τ = 1: a hard copy)."""
    with torch.no_grad():
        for target_param, param in zip(target_network.parameters(), network.parameters(), strict=True):
            target_param.lerp_(param, tau)


def steps_crossed(global_step: int, steps: int, interval: int) -> int:
    """How many multiples of `interval` the step counter passed on its way from global_step − steps."""
    return global_step // interval - (global_step - steps) // interval


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    """ε falls linearly from start_e to end_e over `duration` steps, then stays at end_e (from the start if 0)."""
    if duration <= 0:
        return end_e
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def act(agent, obs: np.ndarray, hidden, epsilon: float, n_actions: int, rng, device) -> tuple:
    """ε-greedy actions of all agents (each explores on its own) and the agents' next hidden state."""
    with torch.inference_mode():
        q_values, hidden = agent(agent_inputs(torch.from_numpy(obs).to(device)), hidden)
    actions = q_values.argmax(dim=-1).cpu().numpy()
    if epsilon > 0:
        explore = rng.random(len(actions)) < epsilon
        actions[explore] = rng.integers(n_actions, size=int(explore.sum()))
    return actions, hidden


def evaluate(
    agent, env_id: str, episodes: int, seed: int, scaling: tuple, device, video_dir: str | None = None
) -> list:
    """Team returns of `episodes` greedy episodes on a fresh env."""
    env = make_env(env_id, render=video_dir is not None)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        agents, hidden, episode_return, frames = env.possible_agents, None, 0.0, []
        while env.agents:
            if video_dir:
                frames.append(env.render())
            actions, hidden = act(agent, stack_obs(obs, agents, scaling), hidden, 0.0, 1, None, device)
            obs, rewards, _, _, _ = env.step({a: int(u) for a, u in zip(agents, actions, strict=True)})
            episode_return += sum(rewards.values())
        if video_dir:
            frames.append(env.render())
            save_video(frames, video_dir, f"eval-episode-{episode}")
        returns.append(episode_return)
    env.close()
    return returns


def save_video(frames: list, video_dir: str, name: str, fps: int = 10) -> None:
    from moviepy import ImageSequenceClip

    os.makedirs(video_dir, exist_ok=True)
    ImageSequenceClip(frames, fps=fps).write_videofile(os.path.join(video_dir, f"{name}.mp4"), logger=None)


def records(episode: int) -> bool:
    """Training episodes recorded with --capture-video: 0, 1, 8, 27, … (cubes), then every 1000th."""
    return round(episode ** (1 / 3)) ** 3 == episode if episode < 1000 else episode % 1000 == 0


# Training
def check_args(args: Args) -> dict | None:
    """Reject bad input before anything is written; return the checkpoint to evaluate, if one is given. The env is
    made by `make_env` (an mpe2 module is no gymnasium id), and every agent's spaces are checked."""
    checkpoint = check_common_args(args)
    if args.batch_size > args.buffer_size:
        fail(f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}")
    if checkpoint is None and args.learning_starts >= args.total_timesteps:
        fail(f"--learning-starts {args.learning_starts} is not below --total-timesteps {args.total_timesteps}")
    check_positive(args, "learning_rate", "max_grad_norm", "hidden_dim")
    check_unit_interval(args, "gamma", "tau")
    check_positive(args, "buffer_size", "batch_size", "gradient_steps", "target_network_frequency")
    check_unit_interval(args, "start_e", "end_e", "exploration_fraction")
    try:
        env = make_env(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    if isinstance(env, TupleParallelEnv) and not isinstance(env.env.action_space, gym.spaces.Tuple):
        fail(
            f"needs a multi-agent env (a Tuple action space, one entry per agent), but {args.env_id} has "
            f"{env.env.action_space}; for one agent use dqn.py (Discrete) or ddpg.py (Box)"
        )
    for agent in env.possible_agents:
        space = env.action_space(agent)
        if not isinstance(space, gym.spaces.Discrete):
            fail(
                f"needs a Discrete action space for every agent, but {agent} of {args.env_id} has {space}; "
                "use maddpg.py"
            )
        if not isinstance(env.observation_space(agent), gym.spaces.Box):
            fail(f"needs Box observations, but {agent} of {args.env_id} has {env.observation_space(agent)}")
    if (
        args.capture_video
        and isinstance(env, TupleParallelEnv)
        and "rgb_array" not in env.env.metadata.get("render_modes", [])
    ):
        fail(f"--capture-video needs an env that renders rgb_array frames, which {args.env_id} does not")
    episode_limit(env)
    env.close()
    return checkpoint


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    rng = np.random.default_rng(args.seed)
    env = make_env(args.env_id, render=args.capture_video)
    agents = list(env.possible_agents)
    n_agents = len(agents)
    obs_dim = max(int(np.prod(env.observation_space(a).shape)) for a in agents)
    n_actions = max(int(env.action_space(a).n) for a in agents)
    limit = episode_limit(env)
    obs, _ = env.reset(seed=args.seed)
    state_dim = len(env.state())
    # inputs on a unit scale: the hypernetworks' outputs, and with them the mixer's gain, grow with the state's size
    obs_scaling = unit_scaling([env.observation_space(a) for a in agents], obs_dim)
    state_center, state_half_width = (a[0] for a in unit_scaling([env.state_space], state_dim))

    agent = AgentNetwork(obs_dim + n_agents, args.hidden_dim, n_actions, args.use_rnn).to(run.device)
    mixer = Mixer(n_agents, state_dim, args.mixing_embed_dim, args.hypernet_embed_dim).to(run.device)
    if checkpoint:
        load_weights(run, agent, checkpoint["agent"])
    target_agent = AgentNetwork(obs_dim + n_agents, args.hidden_dim, n_actions, args.use_rnn).to(run.device)
    target_mixer = Mixer(n_agents, state_dim, args.mixing_embed_dim, args.hypernet_embed_dim).to(run.device)
    target_agent.load_state_dict(agent.state_dict())
    target_mixer.load_state_dict(mixer.state_dict())
    optimizer = torch.optim.Adam(list(agent.parameters()) + list(mixer.parameters()), lr=args.learning_rate)
    rb = EpisodeBuffer(args.buffer_size, limit, n_agents, obs_dim, state_dim, args.seed)
    reward_std = RunningStd()

    global_step, episodes = 0, 0
    total_timesteps = 0 if checkpoint else args.total_timesteps
    # what a snapshot keeps, besides the loop's values, the RNGs of python, numpy and torch, and the episode statistics
    state = dict(
        agent=agent,
        mixer=mixer,
        target_agent=target_agent,
        target_mixer=target_mixer,
        optimizer=optimizer,
        rb=rb,
        reward_std=reward_std,
        rng=rng,
        env_rng=env.unwrapped.np_random,  # of the env only its RNG: snapshots fall between episodes (see below)
    )
    global_step, episodes = resume(run, state, global_step=global_step, episodes=episodes)
    if global_step:  # resumed between two episodes: the next one starts from the env's restored RNG
        obs, _ = env.reset()
    while global_step < total_timesteps:
        # collect: one episode of ε-greedy actions, each agent exploring on its own
        ep_obs, ep_states = [stack_obs(obs, agents, obs_scaling)], [(env.state() - state_center) / state_half_width]
        ep_actions, ep_rewards, ep_terminations, frames = [], [], [], []
        agent_returns = dict.fromkeys(agents, 0.0)
        hidden = None
        recording = args.capture_video and records(episodes)
        while env.agents and global_step < total_timesteps:
            global_step += 1
            if recording:
                frames.append(env.render())
            epsilon = linear_schedule(
                args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
            )
            actions, hidden = act(agent, ep_obs[-1], hidden, epsilon, n_actions, rng, run.device)
            obs, rewards, terminations, _, _ = env.step({a: int(u) for a, u in zip(agents, actions, strict=True)})
            for a in agents:
                agent_returns[a] += rewards[a]
            ep_obs.append(stack_obs(obs, agents, obs_scaling))
            ep_states.append((env.state() - state_center) / state_half_width)
            ep_actions.append(actions)
            ep_rewards.append(sum(rewards[a] for a in agents))  # the team reward
            ep_terminations.append(float(any(terminations.values())))
            log_progress(run, global_step, epsilon=epsilon)
        if env.agents:  # the budget ran out within an episode: it is neither logged nor stored
            break
        if recording:
            frames.append(env.render())
            save_video(frames, run.video_dir, f"train-episode-{episodes}")
        episodes += 1
        log_episode(run, global_step, float(sum(ep_rewards)), len(ep_rewards))  # the team return
        for a in agents:
            run.writer.add_scalar(f"charts/episodic_return_{a}", agent_returns[a], global_step)
        run.writer.add_scalar("charts/epsilon", epsilon, global_step)
        rb.add(np.stack(ep_obs), np.stack(ep_states), np.stack(ep_actions), ep_rewards, ep_terminations)
        reward_std.update(np.asarray(ep_rewards))

        # update: gradient steps on batches of whole episodes, then the target networks
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - global_step / args.total_timesteps) * args.learning_rate
        if global_step > args.learning_starts and rb.size >= args.batch_size:
            for _ in range(args.gradient_steps):
                batch = rb.sample(args.batch_size, run.device)
                log = episodes % 10 == 0
                stats = update(agent, mixer, target_agent, target_mixer, optimizer, batch, args, reward_std, gain=log)
                check_finite(run, global_step, td_loss=stats["td_loss"])
            if log:
                for name, value in stats.items():
                    run.writer.add_scalar(f"losses/{name}", value.item(), global_step)
        if steps_crossed(global_step, len(ep_rewards), args.target_network_frequency):
            update_target(target_agent, agent, args.tau)
            update_target(target_mixer, mixer, args.tau)

        log_progress(run, global_step, epsilon=epsilon)
        if evaluation_due(run):  # with --eval-frequency: the greedy policy as it trains
            log_evaluation(
                run, evaluate(agent, args.env_id, args.eval_episodes, args.seed + 20_000, obs_scaling, run.device)
            )
        # the env's state (mpe2's world, LBF's field) cannot be saved: the snapshot is taken between episodes
        snapshot(run, state, global_step=global_step, episodes=episodes)
        obs, _ = env.reset()

    env.close()
    eval_returns = evaluate(
        agent, args.env_id, args.eval_episodes, args.seed + 10_000, obs_scaling, run.device, run.eval_video_dir
    )
    return finish_run(run, global_step, eval_returns, model={"agent": agent.state_dict(), "mixer": mixer.state_dict()})


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
