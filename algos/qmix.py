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

Why γ = 0.95, a target refresh every 2000 steps and a learning rate annealed to 0 (on simple_spread): with EPyMARL-like
settings (γ = 0.99, targets every 5000 steps, a constant rate) the greedy return rose to about −62 by 40k steps and then
drifted back (−74 at 150k), and with targets every 1000 steps it collapsed to −150 to −200, worse than random play,
while Q_tot climbed from −90 to +320 though every reward is negative. The cause is the mixer's gain ∂Q_tot/∂Q_a (logged
as `losses/mixer_gain`): it grew without bound, from below 1 to over 1000 in 120k steps, while the agents' utilities
stayed of order 1. The hypernetworks' outputs pass through |·| and every optimizer step moves them, so the gain drifts
up at a rate set by the learning rate and by the scale of the values to fit, about r/(1 − γ) (bootstrapping through the
25-step time limit with γ = 0.99 asks for values near −240). Every change of an agent's utilities reaches Q_tot
multiplied by the gain, so once it reaches tens the greedy actions flip from update to update and the target's max
overestimates. A fixed sum mixer (VDN) at the same settings did not diverge; reward standardization, RMSprop, a 5×
smaller rate, single-layer hypernetworks and weight decay each failed to stop it. γ = 0.95 (an effective horizon of 20
steps, near the episode's 25) makes the values five times smaller, and annealing the rate stops the drift: over 200k
steps the gain stayed below 7 (five seeds) and the greedy return kept improving. The drift follows the sum of the step
sizes, so a longer run needs a smaller rate: at 1M steps the default 5e-4 (annealed over 1M) let the gain pass 1000 and
the greedy return fell to −158, while 1e-4 (the same sum as 5e-4 over 200k) kept it below 9 and reached −50.3 (seed 1,
100 greedy episodes). Wider agents at 1e-4: width 128 kept the gain below 7 and reached −47.1; width 256 diverged within
160k steps (the gain rose from 5 to over 500 and Q_tot to 7·10⁴ by 320k steps), so the width too sets how fast the gain
grows.

Inputs are put on a unit scale: observations and states whose spaces are bounded are mapped onto [−1, 1]. The
hypernetworks' outputs, and with them the mixer's gain, grow with the size of the state they read: on Level-Based
Foraging, whose grid coordinates and levels run up to 7, the unscaled gain started near 8 (against 0.5 to 0.8 on
simple_spread) and Q_tot overestimated a return of at most 1 to over 300.

On Level-Based Foraging, keep γ well below 1 although its rewards are sparse: food does not come back, so when the
50-step time limit is bootstrapped through, collecting a step later costs only 1 − γ of the food's value, and with γ =
0.99 that gap drowned in the utilities' noise: on Foraging-5x5-2p-1f-v3 the greedy agents never loaded food in 200k
steps (random play scores 0.45), while γ = 0.95 reached 0.6 and γ = 0.9 0.8 by 120k and 80k steps. On
Foraging-8x8-2p-3f-v3, where 43% of the food needs both agents to load it at once, learning is slow: with γ = 0.9,
standardized rewards, two gradient steps an episode and ε annealed over 200k steps (the marl suite's settings in
benchmarks/suites.py), seed 1's greedy return (100 episodes) stayed below random play's 0.17 for 300k steps, passed 0.5
at 1M and 0.8 at 1.3M and ended at 0.90; with γ = 0.95 (50-episode evaluations) it passed 0.5 only at 1.5M and ended at
0.78, and in shorter trials (400k steps, one gradient step an episode) γ = 0.99 ended at 0.04 against 0.10 for γ = 0.95.
A greedy episode tends to collect all the food or none: with a feed-forward agent, an observation that does not change
(two agents blocking each other, one waiting alone at food it cannot lift) brings the same actions again.

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
"""

# Imports
import collections
import importlib
import importlib.util
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import NoReturn

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
import tyro
from torch import nn
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
    """record videos of training episodes and of the final evaluation episodes into the run folder"""
    save_model: bool = False
    """write the trained weights to `{run folder}/{exp_name}.pt`"""
    checkpoint: str | None = None
    """path of a saved model: load it and only evaluate"""
    log_dir: str = "runs"
    """parent folder of the run folder"""

    # Algorithm specific arguments
    env_id: str = "simple_spread_v3"
    """an mpe2 module name or a gymnasium id with one Tuple entry per agent (defaults tuned on simple_spread_v3)"""
    total_timesteps: int = 200_000
    """env steps (one step: every agent acts once)"""
    eval_episodes: int = 10
    """episodes of each greedy evaluation"""
    eval_frequency: int = 10_000
    """env steps between greedy evaluations during training"""
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


# Environment, networks, episode buffer and the algorithm's math
def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one clear line on stderr and exit status `status` (2: bad input)."""
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


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
        return module.parallel_env(continuous_actions=False, render_mode="rgb_array" if render else None)
    import lbforaging  # noqa: F401  (registers the Foraging-* ids)

    render_mode = {"render_mode": "rgb_array"} if render else {}
    return TupleParallelEnv(gym.make(env_id, disable_env_checker=True, **render_mode))


def episode_limit(env) -> int:
    """The most steps an episode of `env` can last (the episode buffer's time axis)."""
    limit = env.max_episode_steps if isinstance(env, TupleParallelEnv) else getattr(env.unwrapped, "max_cycles", None)
    if not limit:
        fail("the env has no time limit (max_cycles or max_episode_steps); qmix.py stores whole episodes")
    return int(limit)


def check_args(args: Args) -> None:
    """Reject bad input before anything is written."""
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        fail(f"checkpoint file not found: {args.checkpoint}")
    if args.checkpoint is None and args.total_timesteps <= 0:
        fail(f"--total-timesteps must be positive, got {args.total_timesteps}")
    for name in ("eval_episodes", "eval_frequency", "buffer_size", "batch_size", "gradient_steps"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.target_network_frequency <= 0:
        fail(f"--target-network-frequency must be positive, got {args.target_network_frequency}")
    try:
        env = make_env(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    if not hasattr(env, "possible_agents"):
        fail(
            f"qmix.py needs a multi-agent env (a Tuple action space, one entry per agent), but {args.env_id} has "
            f"{env.action_space}; for one agent use dqn.py"
        )
    if isinstance(env, TupleParallelEnv) and not isinstance(env.env.action_space, gym.spaces.Tuple):
        fail(
            f"qmix.py needs a multi-agent env (a Tuple action space, one entry per agent), but {args.env_id} has "
            f"{env.env.action_space}; for one agent use dqn.py (Discrete) or ddpg.py (Box)"
        )
    for agent in env.possible_agents:
        space = env.action_space(agent)
        if not isinstance(space, gym.spaces.Discrete):
            fail(
                f"qmix.py needs a Discrete action space for every agent, but {agent} of {args.env_id} has {space}; "
                "use maddpg.py"
            )
        if not isinstance(env.observation_space(agent), gym.spaces.Box):
            fail(f"qmix.py needs Box observations, but {agent} of {args.env_id} has {env.observation_space(agent)}")
    if (
        args.capture_video
        and isinstance(env, TupleParallelEnv)
        and "rgb_array" not in env.env.metadata.get("render_modes", [])
    ):
        fail(f"--capture-video needs an env that renders rgb_array frames, which {args.env_id} does not")
    episode_limit(env)
    env.close()


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


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    """ε falls linearly from start_e to end_e over `duration` steps, then stays at end_e."""
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

    # env setup
    video_dir = os.path.join(run_dir, "videos")
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

    agent = AgentNetwork(obs_dim + n_agents, args.hidden_dim, n_actions, args.use_rnn).to(device)
    mixer = Mixer(n_agents, state_dim, args.mixing_embed_dim, args.hypernet_embed_dim).to(device)
    if args.checkpoint:
        agent.load_state_dict(torch.load(args.checkpoint, map_location=device)["agent"])
    target_agent = AgentNetwork(obs_dim + n_agents, args.hidden_dim, n_actions, args.use_rnn).to(device)
    target_mixer = Mixer(n_agents, state_dim, args.mixing_embed_dim, args.hypernet_embed_dim).to(device)
    target_agent.load_state_dict(agent.state_dict())
    target_mixer.load_state_dict(mixer.state_dict())
    params = list(agent.parameters()) + list(mixer.parameters())
    optimizer = torch.optim.Adam(params, lr=args.learning_rate)
    rb = EpisodeBuffer(args.buffer_size, limit, n_agents, obs_dim, state_dim, args.seed)
    reward_std = RunningStd()

    recent_returns = collections.deque(maxlen=10)
    global_step, episodes = 0, 0
    total_timesteps = 0 if args.checkpoint else args.total_timesteps
    start_time = last_print = time.time()
    next_eval = args.eval_frequency
    while global_step < total_timesteps:
        # play one episode
        ep_obs, ep_states = [stack_obs(obs, agents, obs_scaling)], [(env.state() - state_center) / state_half_width]
        ep_actions, ep_rewards, ep_terminations, frames = [], [], [], []
        agent_returns = dict.fromkeys(agents, 0.0)
        hidden = None
        recording = args.capture_video and records(episodes)
        while env.agents and global_step < total_timesteps:
            global_step += 1
            if recording:
                frames.append(env.render())
            # ALGO LOGIC: ε-greedy actions, each agent exploring on its own
            epsilon = linear_schedule(
                args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
            )
            actions, hidden = act(agent, ep_obs[-1], hidden, epsilon, n_actions, rng, device)
            obs, rewards, terminations, truncations, _ = env.step(
                {a: int(u) for a, u in zip(agents, actions, strict=True)}
            )
            for a in agents:
                agent_returns[a] += rewards[a]
            ep_obs.append(stack_obs(obs, agents, obs_scaling))
            ep_states.append((env.state() - state_center) / state_half_width)
            ep_actions.append(actions)
            ep_rewards.append(sum(rewards[a] for a in agents))  # the team reward
            ep_terminations.append(float(any(terminations.values())))
        if env.agents:  # the budget ran out within an episode: it is neither logged nor stored
            break
        if recording:
            frames.append(env.render())
            save_video(frames, video_dir, f"train-episode-{episodes}")
        episodes += 1

        # log the finished episode
        team_return = float(sum(ep_rewards))
        writer.add_scalar("charts/episodic_return", team_return, global_step)
        writer.add_scalar("charts/episodic_length", len(ep_rewards), global_step)
        for a in agents:
            writer.add_scalar(f"charts/episodic_return_{a}", agent_returns[a], global_step)
        recent_returns.append(team_return)
        rb.add(np.stack(ep_obs), np.stack(ep_states), np.stack(ep_actions), ep_rewards, ep_terminations)
        reward_std.update(np.asarray(ep_rewards))
        obs, _ = env.reset()

        # ALGO LOGIC: training, on batches of whole episodes
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - global_step / args.total_timesteps) * args.learning_rate
        if global_step > args.learning_starts and rb.size >= args.batch_size:
            for _ in range(args.gradient_steps):
                b_obs, b_states, b_actions, b_rewards, b_terminations, b_filled = rb.sample(args.batch_size, device)
                if args.standardize_rewards:
                    b_rewards = (b_rewards - reward_std.mean) / np.sqrt(reward_std.var + 1e-8)
                inputs = agent_inputs(b_obs)
                q_online = unroll(agent, inputs)  # (B, T + 1, n_agents, n_actions)
                q_taken = q_online[:, :-1].gather(-1, b_actions.unsqueeze(-1)).squeeze(-1)  # Q_a(τ_a, u_a)
                q_tot = mixer(q_taken, b_states[:, :-1])
                with torch.no_grad():
                    targets = qmix_targets(
                        b_rewards,
                        b_terminations,
                        q_online[:, 1:].detach(),
                        unroll(target_agent, inputs)[:, 1:],
                        b_states[:, 1:],
                        target_mixer,
                        args.gamma,
                        args.double_q,
                    )
                loss = masked_td_loss(q_tot, targets, b_filled)
                if episodes % 10 == 0:  # the mixer's gain ∂Q_tot/∂Q_a, the quantity that grows before a collapse
                    (gain,) = torch.autograd.grad(q_tot, q_taken, b_filled, retain_graph=True)
                    writer.add_scalar("losses/mixer_gain", (gain.sum() / b_filled.sum() / n_agents).item(), global_step)
                if not torch.isfinite(loss):
                    writer.close()
                    env.close()
                    fail(f"td_loss became {loss.item()} at global step {global_step}; stopping", status=1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(params, args.max_grad_norm)
                optimizer.step()
            if episodes % 10 == 0:
                writer.add_scalar("losses/td_loss", loss.item(), global_step)
                writer.add_scalar("losses/q_tot", (q_tot * b_filled).sum().item() / b_filled.sum().item(), global_step)
                writer.add_scalar("losses/grad_norm", grad_norm.item(), global_step)

        # θ⁻ ← τ θ + (1 − τ) θ⁻ every `target_network_frequency` steps (checked once an episode)
        if (
            global_step // args.target_network_frequency
            > (global_step - len(ep_rewards)) // args.target_network_frequency
        ):
            with torch.no_grad():
                for target_net, net in ((target_agent, agent), (target_mixer, mixer)):
                    for target_param, param in zip(target_net.parameters(), net.parameters(), strict=True):
                        target_param.lerp_(param, args.tau)

        if global_step >= next_eval and global_step < total_timesteps:
            next_eval += args.eval_frequency
            eval_returns = evaluate(agent, args.env_id, args.eval_episodes, args.seed + 20_000, obs_scaling, device)
            for episode_return in eval_returns:
                writer.add_scalar("eval/episodic_return", episode_return, global_step)
            print(f"step={global_step} greedy eval_return={np.mean(eval_returns):.2f}", flush=True)

        if time.time() - last_print >= 2.0:
            last_print = time.time()
            sps = int(global_step / (last_print - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("charts/epsilon", epsilon, global_step)
            recent = np.mean(recent_returns) if recent_returns else float("nan")
            print(f"step={global_step} sps={sps} epsilon={epsilon:.3f} recent_return={recent:.2f}", flush=True)

    wall_time = time.time() - start_time
    env.close()
    if args.save_model:
        torch.save(
            {"agent": agent.state_dict(), "mixer": mixer.state_dict()}, os.path.join(run_dir, f"{args.exp_name}.pt")
        )

    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns = evaluate(
        agent, args.env_id, args.eval_episodes, args.seed + 10_000, obs_scaling, device, eval_video_dir
    )
    for episode_return in eval_returns:
        writer.add_scalar("eval/episodic_return", episode_return, global_step)
    writer.close()

    summary = {
        "algo": "qmix",
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
        f"eval_return_mean={summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f}; run folder {run_dir}"
    )
    if args.track:
        wandb.finish()
    return summary


if __name__ == "__main__":
    train(tyro.cli(Args))
