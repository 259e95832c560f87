"""MADDPG: multi-agent deep deterministic policy gradient.

Lowe et al. (2017), "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive Environments", NeurIPS.
Centralised training, decentralised execution: each agent i has an actor μ_i(o_i) that sees only its own observation,
and a critic Q_i(o_1, …, o_N, a_1, …, a_N) that sees every agent's observation and action, so that the other agents'
changing policies are part of its input rather than unexplained noise. Critic i is regressed onto
y_i = r_i + γ (1 − terminated) Q_i'(o', μ_1'(o_1'), …, μ_N'(o_N')) with target networks trailing by Polyak averaging,
and actor i follows ∇_{a_i} Q_i(o, a_1, …, a_i = μ_i(o_i), …, a_N), the other agents' actions taken from the replay
buffer. Each agent learns from its own reward r_i, so mixed cooperative-competitive tasks (simple_adversary) work.
A time limit is not a termination: the critic target bootstraps from the observations an episode was cut off in.

Actions:
- Discrete (the default): the actor outputs logits, and an action is a straight-through Gumbel-softmax sample. With
  Gumbel noise g ~ Gumbel(0, 1), y = softmax((logits + g) / temperature) is a relaxed (differentiable) sample of the
  categorical distribution softmax(logits), and its argmax is an exact sample. The straight-through sample is the
  one-hot of that argmax in the forward pass (what the env and the critics see) while its gradient is the gradient of
  y, which lets the critic's action gradient reach the logits. The agents explore by these samples and act greedily
  (argmax of the logits) in evaluation.
- Continuous (`--continuous-actions`, MPE's Box(0, 1) forces): deterministic actors (tanh, rescaled to the action
  bounds) plus Gaussian exploration noise, as in DDPG.
`--share-parameters` gives all agents one actor and one critic, told apart by a one-hot agent id (agents' observations
are zero-padded to the largest; their action spaces must be alike).

Returns: `charts/episodic_return` and `eval/episodic_return` are the team return, the sum over agents of their
rewards (summed over the episode's steps), as EPyMARL reports it; each agent's own return is logged as
`charts/episodic_return_<agent>`, which is the number to read in a competitive task (in simple_adversary the team
return mixes the adversary's reward with the good agents'). A greedy evaluation of `eval_episodes` episodes runs
every `eval_frequency` env steps and once at the end; each of its episodes is logged as `eval/episodic_return` at the
step it ran after (the final evaluation at the last step), so the curve shows the greedy policy as it trains.

Envs (`--env-id`): the Multi-Particle Environments of the `mpe2` package by module name, through PettingZoo's
parallel API: `simple_spread_v3` (3 cooperating agents cover 3 landmarks; the default; the defaults are tuned on it),
`simple_adversary_v3` (2 agents and an adversary), `simple_speaker_listener_v4` (a speaker that only talks and a
listener that only moves); and gymnasium envs with a Tuple entry per agent such as Level-Based Foraging
(`Foraging-8x8-2p-3f-v3`), behind the same parallel API by the adapter `TupleParallelEnv`.
Run: python algos/maddpg.py --env-id simple_spread_v3
Benchmarks: benchmarks/results/quick/README.md (simple_spread, 150k steps) and benchmarks/results/marl/README.md (1M
steps: simple_spread, simple_adversary).
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
    total_timesteps: int = 150_000
    """env steps (one step: every agent acts once)"""
    eval_episodes: int = 10
    """episodes of each greedy evaluation"""
    eval_frequency: int = 10_000
    """evaluate the greedy policy every N env steps, logged and written to evaluations.jsonl (0: only at the end)"""
    continuous_actions: bool = False
    """MPE's continuous actions (deterministic actors, Gaussian noise) instead of its Discrete ones (Gumbel-softmax)"""
    share_parameters: bool = False
    """one actor and one critic for all agents, with a one-hot agent id in their inputs"""
    learning_rate: float = 1e-2
    """the Adam learning rate of actors and critics"""
    buffer_size: int = 1_000_000
    """the replay buffer capacity, in env steps"""
    batch_size: int = 1024
    """the minibatch size sampled from the replay buffer"""
    gamma: float = 0.95
    """the discount factor γ"""
    tau: float = 0.01
    """the target networks' Polyak averaging rate"""
    learning_starts: int = 25_600
    """env steps of random play before the first gradient step"""
    train_frequency: int = 100
    """env steps between training rounds"""
    gradient_steps: int = 1
    """gradient steps in each training round (each updates every agent's critic, then its actor)"""
    hidden_dim: int = 64
    """width of the actors and critics"""
    exploration_noise: float = 0.1
    """continuous actions: the standard deviation of the Gaussian exploration noise, in half-ranges of the bounds"""
    gumbel_temperature: float = 1.0
    """discrete actions: the temperature of the Gumbel-softmax relaxation"""
    policy_regularization: float = 1e-3
    """weight of the squared actor outputs (logits, or pre-tanh actions) added to the actor loss"""
    max_grad_norm: float = 0.5
    """the maximum norm of each network's gradients"""


# The algorithm: environments, networks, replay buffer, the critics' and the actors' losses, acting and evaluation
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
    def unwrapped(self) -> gym.Env:
        return self.env.unwrapped

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


def is_mpe(env_id: str) -> bool:
    return env_id.isidentifier() and importlib.util.find_spec(f"mpe2.{env_id}") is not None


def make_env(env_id: str, continuous_actions: bool, render: bool = False):
    """A PettingZoo parallel env: an mpe2 module by name, else a gymnasium env with a Tuple entry per agent."""
    if is_mpe(env_id):
        module = importlib.import_module(f"mpe2.{env_id}")
        if not hasattr(module, "parallel_env"):  # a folder of mpe2, such as simple_tag for simple_tag_v3
            raise gym.error.Error(f"mpe2 has no env {env_id}; its envs carry a version, such as {env_id}_v3")
        return module.parallel_env(continuous_actions=continuous_actions, render_mode="rgb_array" if render else None)
    import lbforaging  # noqa: F401  (registers the Foraging-* ids)

    render_mode = {"render_mode": "rgb_array"} if render else {}
    return TupleParallelEnv(gym.make(env_id, disable_env_checker=True, **render_mode))


def action_dim(space) -> int:
    """The size of an agent's action as the critics see it: a one-hot for Discrete actions, the vector for Box ones."""
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))


def mlp(input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(input_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, output_dim),
    )


def gumbel_softmax_st(logits: torch.Tensor, temperature: float, gumbels: torch.Tensor | None = None) -> torch.Tensor:
    """A straight-through Gumbel-softmax sample: one_hot(argmax(logits + g)) in the forward pass, the gradient of the
    relaxed sample y = softmax((logits + g) / temperature) in the backward pass; g ~ Gumbel(0, 1) (drawn when None)."""
    if gumbels is None:
        gumbels = -torch.empty_like(logits).exponential_().log()  # −log E, E ~ Exp(1), is Gumbel(0, 1)
    relaxed = F.softmax((logits + gumbels) / temperature, dim=-1)
    hard = F.one_hot(relaxed.argmax(dim=-1), logits.shape[-1]).to(relaxed.dtype)
    return hard + relaxed - relaxed.detach()  # value: hard; gradient: ∂relaxed


class ReplayBuffer:
    """A FIFO of joint transitions in preallocated arrays, sampled uniformly; at capacity the oldest rows are
    overwritten. Per row: every agent's observation (zero-padded), action (one-hot for Discrete ones) and reward, the
    next observations, and whether the episode terminated."""

    def __init__(self, capacity: int, n_agents: int, obs_dim: int, act_dim: int, seed: int):
        self.obs = np.zeros((capacity, n_agents, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, n_agents, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, n_agents, act_dim), dtype=np.float32)
        self.rewards = np.zeros((capacity, n_agents), dtype=np.float32)
        self.terminations = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.rng = np.random.default_rng(seed)

    def add(self, obs, next_obs, actions, rewards, terminated) -> None:
        i = self.pos
        self.obs[i], self.next_obs[i], self.actions[i], self.rewards[i], self.terminations[i] = (
            obs,
            next_obs,
            actions,
            rewards,
            terminated,
        )
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device) -> tuple:
        """(obs, actions, rewards, next_obs, terminations) of `batch_size` rows drawn uniformly with replacement."""
        idx = self.rng.integers(self.size, size=batch_size)
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.terminations)
        return tuple(torch.from_numpy(a[idx]).to(device) for a in arrays)


class Policies(nn.Module):
    """Every agent's actor: per agent its own network on its own observation, or with shared parameters one network
    on the observation and a one-hot agent id. Discrete agents output logits; Box agents a tanh rescaled to the
    bounds (`squash`)."""

    def __init__(self, n_agents: int, obs_dim: int, act_dims: list, hidden_dim: int, share: bool):
        super().__init__()
        self.n_agents, self.act_dims, self.share = n_agents, act_dims, share
        in_dim = obs_dim + (n_agents if share else 0)
        self.nets = nn.ModuleList(
            [mlp(in_dim, hidden_dim, max(act_dims))] if share else [mlp(in_dim, hidden_dim, d) for d in act_dims]
        )

    def forward(self, obs: torch.Tensor, i: int) -> torch.Tensor:
        """The raw output (logits, or the action before tanh) of agent i for observations (..., obs_dim)."""
        if self.share:
            agent_id = F.one_hot(torch.tensor(i, device=obs.device), self.n_agents).to(obs.dtype)
            return self.nets[0](torch.cat([obs, agent_id.expand(*obs.shape[:-1], -1)], dim=-1))
        return self.nets[i](obs)


class Critics(nn.Module):
    """Every agent's centralised critic Q_i(o_1, …, o_N, a_1, …, a_N): all observations and all actions in, one value
    out; per agent its own network, or with shared parameters one network with a one-hot agent id."""

    def __init__(self, n_agents: int, obs_dim: int, act_dim: int, hidden_dim: int, share: bool):
        super().__init__()
        self.n_agents, self.share = n_agents, share
        in_dim = n_agents * (obs_dim + act_dim) + (n_agents if share else 0)
        self.nets = nn.ModuleList([mlp(in_dim, hidden_dim, 1) for _ in range(1 if share else n_agents)])

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, i: int) -> torch.Tensor:
        """Q_i for joint observations (B, N, obs_dim) and joint actions (B, N, act_dim) -> (B,)."""
        x = torch.cat([obs.flatten(1), actions.flatten(1)], dim=-1)
        if self.share:
            agent_id = F.one_hot(torch.tensor(i, device=obs.device), self.n_agents).to(obs.dtype)
            return self.nets[0](torch.cat([x, agent_id.expand(len(x), -1)], dim=-1)).squeeze(-1)
        return self.nets[i](x).squeeze(-1)


def update_target(target_network, network, tau: float) -> None:
    """Polyak averaging θ' ← τ θ + (1 − τ) θ'."""
    with torch.no_grad():
        for target_param, param in zip(target_network.parameters(), network.parameters(), strict=True):
            target_param.lerp_(param, tau)


def td_target(rewards, next_q_values, terminations, gamma: float):
    """y_i = r_i + γ (1 − terminated) Q_i'(o', a'). A truncated transition is not terminal and bootstraps."""
    return rewards + gamma * (1.0 - terminations) * next_q_values


def critic_loss(critics, target_critics, target_policies, codec, batch: tuple, args: Args) -> torch.Tensor:
    """Σ_i E[(Q_i(o, a) − y_i)²], every critic on its own target y_i, where a' = (μ_1'(o_1'), …, μ_N'(o_N')) are the
    target policies' actions (straight-through Gumbel samples for Discrete agents)."""
    obs, actions, rewards, next_obs, terminations = batch
    n_agents = obs.shape[1]
    with torch.no_grad():
        next_actions = torch.stack(
            [
                codec.policy_action(target_policies(next_obs[:, j], j), j, args.gumbel_temperature)
                for j in range(n_agents)
            ],
            dim=1,
        )
        targets = [
            td_target(rewards[:, i], target_critics(next_obs, next_actions, i), terminations, args.gamma)
            for i in range(n_agents)
        ]
    return sum(F.mse_loss(critics(obs, actions, i), targets[i]) for i in range(n_agents))


def actor_loss(policies, critics, codec, batch: tuple, args: Args) -> torch.Tensor:
    """Σ_i −E[Q_i(o, a_1, …, a_i = μ_i(o_i), …, a_N)] + λ E[x_i²], the other agents' actions from the buffer and x_i
    agent i's raw output (logits, or the action before tanh) with λ = `policy_regularization`. Its gradient moves the
    actors only: ∇_{a_i} Q_i reaches μ_i through the straight-through sample or the squashed action."""
    obs, actions = batch[0], batch[1]
    loss = 0.0
    critics.requires_grad_(False)
    for i in range(obs.shape[1]):
        raw = policies(obs[:, i], i)
        joint = actions.clone()
        joint[:, i] = codec.policy_action(raw, i, args.gumbel_temperature)
        loss = loss - critics(obs, joint, i).mean() + args.policy_regularization * codec.mask(raw, i).pow(2).mean()
    critics.requires_grad_(True)
    return loss


def gradient_step(optimizer, loss: torch.Tensor, nets, max_grad_norm: float) -> None:
    """One optimizer step on `loss`, the gradients of each network clipped to `max_grad_norm` on their own."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for net in nets:
        nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    optimizer.step()


def stack_obs(obs: dict, agents: list, obs_dim: int) -> np.ndarray:
    """The agents' observations as one (n_agents, obs_dim) array, each zero-padded to obs_dim."""
    out = np.zeros((len(agents), obs_dim), dtype=np.float32)
    for i, agent in enumerate(agents):
        o = np.asarray(obs[agent], dtype=np.float32).ravel()
        out[i, : len(o)] = o
    return out


class ActionCodec:
    """Between the policies' outputs, the critics' action vectors (padded to the widest agent) and the env's actions:
    a Discrete agent's action is a one-hot of its first `n` entries, a Box agent's the rescaled tanh."""

    def __init__(self, spaces: list, act_dim: int, device: torch.device):
        self.discrete = isinstance(spaces[0], gym.spaces.Discrete)
        self.dims = [action_dim(space) for space in spaces]
        self.act_dim = act_dim
        if not self.discrete:
            low = np.zeros((len(spaces), act_dim), dtype=np.float32)
            high = np.ones((len(spaces), act_dim), dtype=np.float32)
            for i, space in enumerate(spaces):
                low[i, : self.dims[i]], high[i, : self.dims[i]] = space.low.ravel(), space.high.ravel()
            self.low, self.high = torch.as_tensor(low, device=device), torch.as_tensor(high, device=device)

    def mask(self, raw: torch.Tensor, i: int) -> torch.Tensor:
        """Agent i's raw output with the padding beyond its own action size cut off (logits) or zeroed."""
        return raw[..., : self.dims[i]]

    def pad(self, action: torch.Tensor) -> torch.Tensor:
        return F.pad(action, (0, self.act_dim - action.shape[-1]))

    def squash(self, raw: torch.Tensor, i: int) -> torch.Tensor:
        """a = low + (tanh(x) + 1) (high − low) / 2, within agent i's bounds."""
        low, high = self.low[i, : self.dims[i]], self.high[i, : self.dims[i]]
        return low + (torch.tanh(raw) + 1.0) * (high - low) / 2.0

    def policy_action(self, raw: torch.Tensor, i: int, temperature: float) -> torch.Tensor:
        """Agent i's differentiable action for the critics: a straight-through Gumbel sample, or the squashed one."""
        raw = self.mask(raw, i)
        if self.discrete:
            return self.pad(gumbel_softmax_st(raw, temperature))
        return self.pad(self.squash(raw, i))


def act(policies, codec, obs: np.ndarray, explore: bool, args: Args, rng, device) -> tuple:
    """Every agent's action: (what the critics see, padded; what the env takes). Exploring, a Discrete agent plays a
    Gumbel sample (a sample of softmax(logits)) and a Box agent its deterministic action plus Gaussian noise; greedy,
    the argmax of the logits or the deterministic action."""
    critic_actions = np.zeros((len(obs), codec.act_dim), dtype=np.float32)
    env_actions = []
    with torch.inference_mode():
        obs_t = torch.from_numpy(obs).to(device)
        for i in range(len(obs)):
            raw = codec.mask(policies(obs_t[i], i), i)
            if codec.discrete:
                logits = raw.cpu().numpy()
                a = int(np.argmax(logits + rng.gumbel(size=logits.shape) if explore else logits))
                critic_actions[i, a] = 1.0
                env_actions.append(a)
            else:
                a = codec.squash(raw, i).cpu().numpy()
                if explore:
                    low, high = codec.low[i, : len(a)].cpu().numpy(), codec.high[i, : len(a)].cpu().numpy()
                    a = np.clip(a + rng.normal(0.0, args.exploration_noise * (high - low) / 2.0), low, high)
                critic_actions[i, : len(a)] = a
                env_actions.append(a.astype(np.float32))
    return critic_actions, env_actions


def random_actions(spaces: list, codec, rng) -> tuple:
    """Uniformly random actions of every agent, as `act` returns them."""
    critic_actions = np.zeros((len(spaces), codec.act_dim), dtype=np.float32)
    env_actions = []
    for i, space in enumerate(spaces):
        if codec.discrete:
            a = int(rng.integers(space.n))
            critic_actions[i, a] = 1.0
        else:
            a = rng.uniform(space.low, space.high).astype(np.float32)
            critic_actions[i, : a.size] = a.ravel()
        env_actions.append(a)
    return critic_actions, env_actions


def evaluate(policies, codec, args: Args, seed: int, obs_dim: int, device, video_dir: str | None = None) -> list:
    """Team returns of `eval_episodes` greedy episodes on a fresh env."""
    env = make_env(args.env_id, args.continuous_actions, render=video_dir is not None)
    returns = []
    for episode in range(args.eval_episodes):
        obs, _ = env.reset(seed=seed + episode)
        agents, episode_return, frames = env.possible_agents, 0.0, []
        while env.agents:
            if video_dir:
                frames.append(env.render())
            _, actions = act(policies, codec, stack_obs(obs, agents, obs_dim), False, args, None, device)
            obs, rewards, _, _, _ = env.step(dict(zip(agents, actions, strict=True)))
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
    check_positive(args, "buffer_size", "batch_size", "train_frequency", "gradient_steps")
    try:
        env = make_env(args.env_id, args.continuous_actions)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    if isinstance(env, TupleParallelEnv) and not isinstance(env.env.action_space, gym.spaces.Tuple):
        fail(
            f"needs a multi-agent env (a Tuple action space, one entry per agent), but {args.env_id} has "
            f"{env.env.action_space}; for one agent use ddpg.py (Box) or dqn.py (Discrete)"
        )
    if isinstance(env, TupleParallelEnv) and args.continuous_actions:
        fail(f"--continuous-actions selects the mpe2 envs' continuous actions; {args.env_id}'s spaces are its own")
    spaces = [env.action_space(agent) for agent in env.possible_agents]
    for agent, space in zip(env.possible_agents, spaces, strict=True):
        box = isinstance(space, gym.spaces.Box) and np.isfinite(space.low).all() and np.isfinite(space.high).all()
        if not (isinstance(space, gym.spaces.Discrete) or box):
            fail(f"needs a Discrete or bounded Box action space for every agent, but {agent} has {space}")
        if not isinstance(env.observation_space(agent), gym.spaces.Box):
            fail(f"needs Box observations, but {agent} of {args.env_id} has {env.observation_space(agent)}")
    if len({type(space) for space in spaces}) > 1:
        fail(f"needs the agents' action spaces to be all Discrete or all Box, but {args.env_id} mixes them")
    if args.share_parameters and len({action_dim(space) for space in spaces}) > 1:
        fail(f"--share-parameters needs agents with alike action spaces, but {args.env_id} has {spaces}")
    if (
        args.capture_video
        and isinstance(env, TupleParallelEnv)
        and "rgb_array" not in env.env.metadata.get("render_modes", [])
    ):
        fail(f"--capture-video needs an env that renders rgb_array frames, which {args.env_id} does not")
    env.close()
    return checkpoint


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    rng = np.random.default_rng(args.seed)
    env = make_env(args.env_id, args.continuous_actions, render=args.capture_video)
    agents = list(env.possible_agents)
    n_agents = len(agents)
    spaces = [env.action_space(a) for a in agents]
    obs_dim = max(int(np.prod(env.observation_space(a).shape)) for a in agents)
    act_dims = [action_dim(space) for space in spaces]
    codec = ActionCodec(spaces, max(act_dims), run.device)

    policies = Policies(n_agents, obs_dim, act_dims, args.hidden_dim, args.share_parameters).to(run.device)
    critics = Critics(n_agents, obs_dim, max(act_dims), args.hidden_dim, args.share_parameters).to(run.device)
    if checkpoint:
        load_weights(run, policies, checkpoint["policies"])
    target_policies = Policies(n_agents, obs_dim, act_dims, args.hidden_dim, args.share_parameters).to(run.device)
    target_critics = Critics(n_agents, obs_dim, max(act_dims), args.hidden_dim, args.share_parameters).to(run.device)
    target_policies.load_state_dict(policies.state_dict())
    target_critics.load_state_dict(critics.state_dict())
    actor_optimizer = torch.optim.Adam(policies.parameters(), lr=args.learning_rate)
    critic_optimizer = torch.optim.Adam(critics.parameters(), lr=args.learning_rate)
    rb = ReplayBuffer(args.buffer_size, n_agents, obs_dim, max(act_dims), args.seed)

    agent_returns, episode_length, episodes = np.zeros(n_agents), 0, 0
    total_timesteps = 0 if checkpoint else args.total_timesteps
    raw_obs, _ = env.reset(seed=args.seed)
    # what a snapshot keeps, besides the loop's values, the RNGs of python, numpy and torch, and the episode statistics
    state = dict(
        policies=policies,
        critics=critics,
        target_policies=target_policies,
        target_critics=target_critics,
        actor_optimizer=actor_optimizer,
        critic_optimizer=critic_optimizer,
        rb=rb,
        rng=rng,
        env_rng=env.unwrapped.np_random,  # of the env only its RNG: snapshots fall between episodes (see below)
    )
    last_step, episodes = resume(run, state, global_step=0, episodes=episodes)
    if last_step:  # resumed between two episodes: the next one starts from the env's restored RNG
        raw_obs, _ = env.reset()
    obs, frames, recording = stack_obs(raw_obs, agents, obs_dim), [], args.capture_video and records(episodes)
    for global_step in range(last_step + 1, total_timesteps + 1):
        # collect: random actions at first, then the policies' exploring actions; store the joint transition
        if recording:
            frames.append(env.render())
        if global_step <= args.learning_starts:
            critic_actions, env_actions = random_actions(spaces, codec, rng)
        else:
            critic_actions, env_actions = act(policies, codec, obs, True, args, rng, run.device)
        raw_obs, rewards, terminations, _, _ = env.step(dict(zip(agents, env_actions, strict=True)))
        next_obs = stack_obs(raw_obs, agents, obs_dim)  # MPE keeps the last observations when the episode ends
        rewards = np.array([rewards[a] for a in agents], dtype=np.float32)
        rb.add(obs, next_obs, critic_actions, rewards, float(any(terminations.values())))
        obs = next_obs
        agent_returns += rewards
        episode_length += 1

        if not env.agents:  # the episode ended (MPE: every agent truncated at max_cycles); log the team's return
            log_episode(run, global_step, float(agent_returns.sum()), episode_length)
            for a, agent_return in zip(agents, agent_returns, strict=True):
                run.writer.add_scalar(f"charts/episodic_return_{a}", agent_return, global_step)
            if recording:
                frames.append(env.render())
                save_video(frames, run.video_dir, f"train-episode-{episodes}")
            episodes += 1
            agent_returns[:], episode_length, frames = 0.0, 0, []
            recording = args.capture_video and records(episodes)

        # update: every critic on its target, then every actor on the updated critics, then the target networks
        if global_step > args.learning_starts and global_step % args.train_frequency == 0:
            for _ in range(args.gradient_steps):
                batch = rb.sample(args.batch_size, run.device)
                loss_q = critic_loss(critics, target_critics, target_policies, codec, batch, args)
                check_finite(run, global_step, critic_loss=loss_q)
                gradient_step(critic_optimizer, loss_q, critics.nets, args.max_grad_norm)
                loss_pi = actor_loss(policies, critics, codec, batch, args)
                check_finite(run, global_step, actor_loss=loss_pi)
                gradient_step(actor_optimizer, loss_pi, policies.nets, args.max_grad_norm)
                update_target(target_policies, policies, args.tau)
                update_target(target_critics, critics, args.tau)
            run.writer.add_scalar("losses/critic_loss", loss_q.item() / n_agents, global_step)
            run.writer.add_scalar("losses/actor_loss", loss_pi.item() / n_agents, global_step)

        log_progress(run, global_step)
        if evaluation_due(run):  # with --eval-frequency: the greedy policy as it trains
            log_evaluation(run, evaluate(policies, codec, args, args.seed + 20_000, obs_dim, run.device))
        if not env.agents:  # the env's state (mpe2's world, LBF's field) cannot be saved: snapshot between episodes
            snapshot(run, state, global_step=global_step, episodes=episodes)
            raw_obs, _ = env.reset()
            obs = stack_obs(raw_obs, agents, obs_dim)

    env.close()
    eval_returns = evaluate(policies, codec, args, args.seed + 10_000, obs_dim, run.device, run.eval_video_dir)
    return finish_run(run, total_timesteps, eval_returns, model={"policies": policies.state_dict()})


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
