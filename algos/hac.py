"""HAC: Hierarchical Actor-Critic.

Levy, Konidaris, Platt & Saenko (2019), "Learning Multi-Level Hierarchies with Hindsight", ICLR.
A stack of `num_levels` goal-conditioned actor-critics (DDPG-style, one per level). The top level pursues the env's
goal; each level above 0 acts by proposing a subgoal (a state) to the level below, which gets at most H
(`time_limit`) attempts to reach it; level 0 acts in the env. Every level's reward is −1 per attempt and 0 when its
goal is reached (which ends its task), so Q lies in [−H, 0], and the critic's output is bounded to it. Three kinds of
transitions make the levels learn at once although the levels below are still poor:
  1. hindsight action: a level is trained as if it had proposed the subgoal the level below actually reached (so its
     transitions do not depend on a lower level that is still learning);
  2. hindsight goal: the same transitions again, with the goal replaced by a state reached later in the level's H
     attempts, the reward and the end recomputed (hindsight experience replay, Andrychowicz et al. 2017);
  3. subgoal testing: λ of the time (`subgoal_test_rate`) a subgoal is tested: the levels below act without noise,
     and if they miss it in their H attempts the level gets the penalty −H with no bootstrap (γ = 0), which teaches
     it the subgoals its levels below can reach.
The critic is Q = −H σ(z), fit to the clipped target y = r + γ (1 − done) Q(s', π(s', g), g) ∈ [−H, 0] by the
cross-entropy of σ(z) against −y / H instead of the squared error: the target of every unreachable goal is the bound
−H, where σ is flat and a squared-error critic stops learning. The actor maximizes Q, plus a small penalty on its
pre-tanh outputs that keeps it out of tanh's flat ends. Both are additions to the paper. There are no target
networks (nor in the paper's code): the bounded Q and the short horizons keep the targets stable. Exploration: a
uniformly random action `random_action_rate` of the time, else Gaussian noise of `exploration_noise` times half of
each action dimension's range.

Goals. A goal space is a projection of the observation with, per coordinate, a threshold: goal g is reached in state s
when every coordinate of project(s) lies within its threshold of g's (for an angle, the wrapped difference). The top
level's goals live in the end-goal space, the subgoals (the actions of the levels above 0, and the goals of the levels
below the top) in the subgoal space. GOAL_SPACES below holds them per env:
  - MountainCarContinuous-v0: the end goal is the env's own, position ≥ 0.45 (the right hilltop), written as position
    0.55 ± 0.1 (the position never exceeds 0.6); subgoals are full states (position, velocity), reached within
    (0.05, 0.02).
  - Pendulum-v1: the end goal is upright and still, (θ, θ̇) = (0, 0) within (0.2 rad, 0.6 rad/s), θ read from the
    observation (cos θ, sin θ, θ̇); subgoals are (θ, θ̇) too. Pendulum never ends by itself: an HAC episode ends when the
    goal is reached, so its returns are of shorter episodes than the env's 200 steps; the success rate is the measure.
To add an env: add a GoalSpace entry (the end goal, the bounds and thresholds of both spaces, the two projections,
which coordinates are angles). A variant of a known env under another id can use an entry by `--goal-space`.

An episode ends when the env ends it, when the end goal is reached, or when the top level has used its H attempts (at
most H^num_levels env steps). The budget is training episodes (`total_episodes`), not env steps: HAC learns once per
episode (`updates_per_episode` gradient steps per level), its episodes vary in length, and its success rate is
reported per episode. The summary's `eval_return_mean` is the env return of the greedy evaluation episodes; the
success rate (the fraction of them that reach the end goal) is printed and logged as `eval/success_rate`, and the
training episodes' as `charts/success`.

Spaces: Box observations, Box actions with finite bounds, an env with an entry in GOAL_SPACES; for Discrete actions
use dqn.py.
Run: python algos/hac.py --env-id MountainCarContinuous-v0
     python algos/hac.py --env-id MountainCarContinuous-v0 --num-levels 3 --time-limit 10
     python algos/hac.py --env-id Pendulum-v1
Benchmarks: benchmarks/results/quick (MountainCarContinuous-v0, 300 episodes).
What was tried and measured: benchmarks/NOTES.md#hacpy
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
    env_id: str = "MountainCarContinuous-v0"
    """the gymnasium id of the env, one with an entry in GOAL_SPACES (defaults tuned on MountainCarContinuous-v0)"""
    goal_space: str | None = None
    """the GOAL_SPACES entry to use (default: env_id's own), for a variant of a known env under another id"""
    total_episodes: int = 300
    """training episodes (the budget; the summary's total_timesteps counts the env steps they took)"""
    eval_episodes: int = 20
    """episodes of the final greedy evaluation (20: the success rate's sample)"""
    eval_frequency: int = 0
    """evaluate the greedy policy every N episodes, logged and written to evaluations.jsonl (0: only at the end)"""
    num_levels: int = 2
    """levels of the hierarchy (1 is a flat goal-conditioned DDPG with hindsight goals)"""
    time_limit: int = 20
    """H: the attempts each level gets to reach its goal (an episode lasts at most H^num_levels env steps)"""
    subgoal_test_rate: float = 0.3
    """λ: the probability that a proposed subgoal is tested"""
    gamma: float = 0.98
    """the discount factor γ"""
    learning_rate: float = 1e-3
    """the Adam learning rate of the actors and the critics"""
    buffer_size: int = 500_000
    """the replay buffer capacity of each level"""
    batch_size: int = 256
    """the minibatch size sampled from a level's replay buffer"""
    updates_per_episode: int = 40
    """gradient steps of each level after each training episode"""
    hindsight_goals: int = 3
    """hindsight goals per sequence of a level's attempts (the last state reached is always one)"""
    exploration_noise: float = 0.1
    """the standard deviation of the Gaussian exploration noise, in units of half of each action dimension's range"""
    random_action_rate: float = 0.2
    """the probability of a uniformly random action (env action or subgoal) while exploring"""
    saturation_penalty: float = 0.01
    """the weight c of c·E[z²] in the actor loss, z the pre-tanh output: keeps the actors out of tanh's flat ends"""
    hidden_size: int = 64
    """the width of the three hidden layers of every actor and critic"""


# The algorithm: goal spaces, the levels' transitions and targets, networks, replay buffer, losses, the levels
@dataclass(frozen=True)
class GoalSpace:
    """How HAC sees one env's goals (see the module docstring). Projections map observations (..., obs_dim) to goal
    coordinates (..., goal_dim); `*_angles` are the indices of coordinates that are angles."""

    end_goal: tuple
    end_goal_low: tuple
    end_goal_high: tuple
    end_goal_threshold: tuple
    project_end_goal: Callable
    subgoal_low: tuple
    subgoal_high: tuple
    subgoal_threshold: tuple
    project_subgoal: Callable
    end_goal_angles: tuple = ()
    subgoal_angles: tuple = ()


def pendulum_angle_and_velocity(obs: np.ndarray) -> np.ndarray:
    """Pendulum's observation (cos θ, sin θ, θ̇) → (θ, θ̇), θ in [−π, π] and 0 upright."""
    return np.stack([np.arctan2(obs[..., 1], obs[..., 0]), obs[..., 2]], axis=-1)


GOAL_SPACES = {
    "MountainCarContinuous-v0": GoalSpace(
        end_goal=(0.55,),  # position ≥ 0.45, the env's goal: |x − 0.55| ≤ 0.1 with x ≤ 0.6
        end_goal_low=(-1.2,),
        end_goal_high=(0.6,),
        end_goal_threshold=(0.1,),
        project_end_goal=lambda obs: obs[..., :1],
        subgoal_low=(-1.2, -0.07),
        subgoal_high=(0.6, 0.07),
        subgoal_threshold=(0.05, 0.02),
        project_subgoal=lambda obs: obs[..., :2],
    ),
    "Pendulum-v1": GoalSpace(
        end_goal=(0.0, 0.0),  # upright and still
        end_goal_low=(-np.pi, -8.0),
        end_goal_high=(np.pi, 8.0),
        end_goal_threshold=(0.2, 0.6),
        project_end_goal=pendulum_angle_and_velocity,
        subgoal_low=(-np.pi, -8.0),
        subgoal_high=(np.pi, 8.0),
        subgoal_threshold=(0.2, 0.6),
        project_subgoal=pendulum_angle_and_velocity,
        end_goal_angles=(0,),
        subgoal_angles=(0,),
    ),
}


@dataclass(frozen=True)
class LevelSpace:
    """One level's goal space (what it pursues) and action space (env actions at level 0, subgoals above)."""

    goal_low: np.ndarray
    goal_high: np.ndarray
    threshold: np.ndarray
    angles: tuple
    project: Callable  # observation → the level's goal space
    action_low: np.ndarray
    action_high: np.ndarray
    project_action: Callable | None  # observation → the level's action space (the subgoal reached), levels above 0


def level_spaces(space: GoalSpace, num_levels: int, action_low: np.ndarray, action_high: np.ndarray) -> list:
    """The spaces of levels 0 (bottom) to num_levels − 1 (top): the top pursues end goals, the others subgoals."""
    f32 = lambda values: np.asarray(values, dtype=np.float32)  # noqa: E731
    levels = []
    for level in range(num_levels):
        top = level == num_levels - 1
        levels.append(
            LevelSpace(
                goal_low=f32(space.end_goal_low if top else space.subgoal_low),
                goal_high=f32(space.end_goal_high if top else space.subgoal_high),
                threshold=f32(space.end_goal_threshold if top else space.subgoal_threshold),
                angles=space.end_goal_angles if top else space.subgoal_angles,
                project=space.project_end_goal if top else space.project_subgoal,
                action_low=f32(action_low if level == 0 else space.subgoal_low),
                action_high=f32(action_high if level == 0 else space.subgoal_high),
                project_action=None if level == 0 else space.project_subgoal,
            )
        )
    return levels


def goal_reached(achieved: np.ndarray, goal: np.ndarray, threshold: np.ndarray, angles: tuple = ()) -> np.ndarray:
    """Whether each achieved goal (..., goal_dim) lies within `threshold` of `goal` in every coordinate: |x − g| ≤ δ,
    with the difference of an angle wrapped to [−π, π)."""
    diff = np.asarray(achieved, dtype=np.float64) - np.asarray(goal, dtype=np.float64)
    if angles:
        diff[..., list(angles)] = (diff[..., list(angles)] + np.pi) % (2 * np.pi) - np.pi
    return np.all(np.abs(diff) <= threshold, axis=-1)


def hindsight_goal_indices(num_transitions: int, num_goals: int, rng: np.random.Generator) -> np.ndarray:
    """Which of a level's transitions lend their reached state as hindsight goals: `num_goals` − 1 drawn uniformly
    (with replacement) and always the last one."""
    if num_goals == 0 or num_transitions == 0:
        return np.zeros(0, dtype=np.int64)
    return np.append(rng.integers(num_transitions, size=num_goals - 1), num_transitions - 1)


def level_transitions(
    obs, actions, hindsight_actions, next_obs, achieved_goals, missed_tests, goal, threshold, angles, penalty, indices
) -> tuple:
    """All the replay transitions (s, a, r, s', g, done) of one sequence of a level's attempts (Levy et al. 2019,
    Algorithm 2). Per attempt t: s_t, the proposed action a_t, the action reached in hindsight (a_t itself at level 0,
    or when the level below reached the subgoal; else the subgoal it did reach), s'_t, what s'_t achieves in the
    level's goal space, and whether a_t was a tested subgoal that the level below missed.
      1. hindsight action transitions: (s_t, hindsight a_t, r_t, s'_t, g), r_t = 0 and done if s'_t reaches g, else −1;
      2. hindsight goal transitions: the same for each goal g' = achieved_goals[j], j in `indices`;
      3. subgoal testing transitions: (s_t, a_t, penalty, s'_t, g, done) for each missed test, done meaning γ = 0."""
    num = len(obs)
    goals = np.concatenate([np.asarray(goal, dtype=np.float32)[None], achieved_goals[indices]])  # g, then each g'
    reached = np.stack([goal_reached(achieved_goals, g, threshold, angles) for g in goals])  # (1 + len(indices), num)
    copies = len(goals)
    missed = np.asarray(missed_tests, dtype=bool)
    rows = (
        np.concatenate([np.tile(obs, (copies, 1)), obs[missed]]),
        np.concatenate([np.tile(hindsight_actions, (copies, 1)), actions[missed]]),
        np.concatenate([np.where(reached.ravel(), 0.0, -1.0), np.full(missed.sum(), float(penalty))]),
        np.concatenate([np.tile(next_obs, (copies, 1)), next_obs[missed]]),
        np.concatenate([np.repeat(goals, num, axis=0), np.repeat(goals[:1], missed.sum(), axis=0)]),
        np.concatenate([reached.ravel(), np.ones(missed.sum(), dtype=bool)]),
    )
    return tuple(np.asarray(r, dtype=np.float32) for r in rows)


def hac_target(rewards, next_q_values, dones, gamma: float, time_limit: int) -> torch.Tensor:
    """y = r + γ (1 − done) Q(s', π(s', g), g), clipped to Q's bounds [−H, 0]. A reached goal (r = 0) and a missed
    subgoal test (r = −H) are done: their target is the reward alone."""
    return (rewards + gamma * (1.0 - dones) * next_q_values).clamp(-float(time_limit), 0.0)


def critic_cross_entropy(logits: torch.Tensor, target: torch.Tensor, time_limit: int) -> torch.Tensor:
    """The critic's regression of Q = −H σ(z) onto y ∈ [−H, 0], as the cross-entropy of σ(z) against p = −y / H:
    −p log σ(z) − (1 − p) log(1 − σ(z)), least where σ(z) = p, i.e. Q = y. Its gradient in z, σ(z) − p, does not
    vanish where σ is flat, as the squared error's does: a target at the bound −H (every unreachable goal's, the
    penalty's) drives z to +∞, where a squared-error critic can no longer move."""
    return F.binary_cross_entropy_with_logits(logits, -target / time_limit)


def box_center_and_scale(low, high) -> tuple:
    """The center and half-width of a box, for scaling inputs to about [−1, 1] (an infinite bound: 0 and 1)."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    finite = np.isfinite(low) & np.isfinite(high) & (high > low)
    center = np.where(finite, (high + low) / 2, 0.0)
    scale = np.where(finite, (high - low) / 2, 1.0)
    return torch.as_tensor(center, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32)


def mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, out_dim),
    )


class Actor(nn.Module):
    """A level's deterministic policy π(s, g): a tanh output rescaled to the level's action bounds. The inputs are
    scaled to about [−1, 1] by the bounds of their spaces."""

    def __init__(self, obs_box: tuple, goal_box: tuple, action_box: tuple, hidden: int):
        super().__init__()
        lows, highs = np.concatenate([obs_box[0], goal_box[0]]), np.concatenate([obs_box[1], goal_box[1]])
        center, scale = box_center_and_scale(lows, highs)
        self.register_buffer("in_center", center)
        self.register_buffer("in_scale", scale)
        action_center, action_scale = box_center_and_scale(*action_box)
        self.register_buffer("action_bias", action_center)
        self.register_buffer("action_scale", action_scale)
        self.net = mlp(len(center), len(action_center), hidden)

    def pre_tanh(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return self.net((torch.cat([obs, goal], dim=-1) - self.in_center) / self.in_scale)

    def squash(self, pre_tanh: torch.Tensor) -> torch.Tensor:
        return torch.tanh(pre_tanh) * self.action_scale + self.action_bias

    def forward(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return self.squash(self.pre_tanh(obs, goal))


# Q starts near −1 (one step from any goal): optimistic, so that untried subgoals are proposed, yet away from the
# sigmoid's flat end, so that Q can learn in either direction
Q_INIT = -1.0


class Critic(nn.Module):
    """A level's Q(s, g, a) = −H σ(f(s, g, a) + b), bounded to [−H, 0] like the returns it estimates (rewards −1 for
    at most H attempts); b = logit(Q_INIT / −H) puts the initial Q near Q_INIT. Inputs scaled as the actor's."""

    def __init__(self, obs_box: tuple, goal_box: tuple, action_box: tuple, hidden: int, time_limit: int):
        super().__init__()
        lows = np.concatenate([obs_box[0], goal_box[0], action_box[0]])
        highs = np.concatenate([obs_box[1], goal_box[1], action_box[1]])
        center, scale = box_center_and_scale(lows, highs)
        self.register_buffer("in_center", center)
        self.register_buffer("in_scale", scale)
        self.net = mlp(len(center), 1, hidden)
        self.time_limit = float(time_limit)
        init = min(-Q_INIT / time_limit, 0.5)
        self.offset = float(np.log(init / (1 - init)))

    def logits(self, obs: torch.Tensor, goal: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([obs, goal, action], dim=-1) - self.in_center) / self.in_scale
        return self.net(x).squeeze(-1) + self.offset

    def forward(self, obs: torch.Tensor, goal: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return -self.time_limit * torch.sigmoid(self.logits(obs, goal, action))


class ReplayBuffer:
    """A FIFO of goal-conditioned transitions (s, a, r, s', g, done) in preallocated arrays, filled many rows at a time
    and sampled uniformly; at capacity the oldest rows are overwritten. Rows live in numpy; only a sampled minibatch
    becomes tensors."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, goal_dim: int, device: torch.device, seed: int):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.goals = np.zeros((capacity, goal_dim), dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.size, self.device = capacity, 0, 0, device
        self.rng = np.random.default_rng(seed)

    def add(self, obs, actions, rewards, next_obs, goals, dones) -> None:
        """Append rows, the row axis first (of more rows than the capacity, the last `capacity` of them)."""
        rows = [np.asarray(values)[-self.capacity :] for values in (obs, actions, rewards, next_obs, goals, dones)]
        n = len(rows[0])
        # rows pos … pos + n − 1, wrapping around at capacity (a slice, the cheap case, when they do not wrap)
        idx = (
            slice(self.pos, self.pos + n)
            if self.pos + n <= self.capacity
            else np.arange(self.pos, self.pos + n) % self.capacity
        )
        self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.goals[idx], self.dones[idx] = rows
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int):
        """(obs, actions, rewards, next_obs, goals, dones) of `batch_size` rows drawn uniformly with replacement."""
        idx = self.rng.integers(self.size, size=batch_size)
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.goals, self.dones)
        return tuple(torch.from_numpy(a[idx]).to(self.device) for a in arrays)


def critic_loss(actor, critic, batch: tuple, gamma: float, time_limit: int):
    """A level's critic loss: the cross-entropy of Q(s, g, a) against y = r + γ (1 − done) Q(s', π(s', g), g)
    clipped to [−H, 0] (no target networks, as in the paper); and Q(s, g, a)."""
    obs, actions, rewards, next_obs, goals, dones = batch
    with torch.no_grad():
        target = hac_target(rewards, critic(next_obs, goals, actor(next_obs, goals)), dones, gamma, time_limit)
    logits = critic.logits(obs, goals, actions)
    return critic_cross_entropy(logits, target, time_limit), -time_limit * torch.sigmoid(logits.detach())


def actor_loss(actor, critic, obs, goals, saturation_penalty: float):
    """A level's actor loss −E[Q(s, g, π(s, g))] + c E[z²], z the pre-tanh output; the gradient of the first term is
    the deterministic policy gradient −E[∇_a Q(s, g, a)|_{a=π(s, g)} ∇_φ π(s, g)]."""
    pre_tanh = actor.pre_tanh(obs, goals)
    return -critic(obs, goals, actor.squash(pre_tanh)).mean() + saturation_penalty * (pre_tanh**2).mean()


@dataclass
class Episode:
    """What the levels of one HAC episode share: the env, its present observation, each level's present goal, which
    of these goals the present observation reaches, and the episode's return, length and end."""

    env: gym.Env
    obs: np.ndarray
    goals: list
    reached: list
    episode_return: float = 0.0
    length: int = 0
    over: bool = False  # the env terminated or truncated


def choose_action(actor: Actor, space: LevelSpace, obs, goal, args: Args, device, rng, explore: bool) -> np.ndarray:
    """π(s, g); while exploring, a uniformly random action `random_action_rate` of the time, else π(s, g) plus
    Gaussian noise of `exploration_noise` times half the range, clipped to the bounds."""
    if explore and rng.random() < args.random_action_rate:
        return rng.uniform(space.action_low, space.action_high).astype(np.float32)
    with torch.inference_mode():
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)[None]
        action = actor(obs_t, torch.as_tensor(goal, dtype=torch.float32, device=device)[None])[0].cpu().numpy()
    if explore:
        half_range = (space.action_high - space.action_low) / 2
        noise = rng.normal(size=action.shape) * args.exploration_noise * half_range
        action = np.clip(action + noise, space.action_low, space.action_high)
    return action.astype(np.float32)


def run_level(
    level: int, ep: Episode, actors: list, spaces: list, args: Args, device, rng, buffers, test: bool
) -> bool:
    """Level `level` pursues ep.goals[level] for at most H attempts (Levy et al. 2019, Algorithm 2, TRAIN-LEVEL),
    stopping early when the episode ends or the present state reaches its goal or that of a level above. An attempt is
    one env action (level 0) or a subgoal handed to the level below. With `buffers` (training) it explores, tests
    subgoals and stores its transitions; without them (evaluation) it acts greedily. `test`: a level above is testing
    its subgoal, so this level acts without noise. Returns whether the level used its H attempts in vain."""
    space, explore = spaces[level], buffers is not None and not test
    record = collections.defaultdict(list)
    for _ in range(args.time_limit):
        obs, goal = ep.obs, ep.goals[level]
        action = choose_action(actors[level], space, obs, goal, args, device, rng, explore)
        if level > 0:
            # test the subgoal λ of the time (and always when testing already): the levels below act greedily
            test_subgoal = test or (explore and rng.random() < args.subgoal_test_rate)
            ep.goals[level - 1] = action
            lower_in_vain = run_level(level - 1, ep, actors, spaces, args, device, rng, buffers, test_subgoal)
            subgoal_reached = ep.reached[level - 1]
        else:
            next_obs, reward, terminated, truncated, _ = ep.env.step(action)
            ep.obs, ep.over = next_obs, bool(terminated or truncated)
            ep.episode_return += float(reward)
            ep.length += 1
            # which goals, of every level, the new state reaches
            ep.reached = [
                goal_reached(s.project(next_obs), g, s.threshold, s.angles)
                for s, g in zip(spaces, ep.goals, strict=True)
            ]
            test_subgoal, lower_in_vain, subgoal_reached = False, False, True
        if buffers is not None:
            # ALGO LOGIC: the action reached in hindsight: the subgoal itself if reached, else the state reached
            record["obs"].append(obs)
            record["actions"].append(action)
            hindsight = action if subgoal_reached else space.project_action(ep.obs)
            record["hindsight_actions"].append(hindsight)
            record["next_obs"].append(ep.obs)
            record["achieved_goals"].append(space.project(ep.obs))
            record["missed_tests"].append(test_subgoal and lower_in_vain)  # penalized: tested, missed in H attempts
        if ep.over or any(ep.reached[level:]):
            break
    if buffers is not None:
        arrays = {key: np.asarray(values, dtype=np.float32) for key, values in record.items()}
        indices = hindsight_goal_indices(len(arrays["obs"]), args.hindsight_goals, rng)
        buffers[level].add(
            *level_transitions(
                **arrays,
                goal=ep.goals[level],
                threshold=space.threshold,
                angles=space.angles,
                penalty=-args.time_limit,
                indices=indices,
            )
        )
    return not (ep.over or any(ep.reached[level:]))


def make_env(env_id: str, capture_video: bool, video_dir: str) -> gym.Env:
    if capture_video:
        return gym.wrappers.RecordVideo(gym.make(env_id, render_mode="rgb_array"), video_dir)
    return gym.make(env_id)


def new_episode(env: gym.Env, obs: np.ndarray, space: GoalSpace, num_levels: int) -> Episode:
    """An episode whose top level pursues the end goal (the levels below get their goals as it goes)."""
    goals = [None] * (num_levels - 1) + [np.asarray(space.end_goal, dtype=np.float32)]
    return Episode(env, obs, goals, [False] * num_levels)


def evaluate(actors, spaces, space: GoalSpace, args: Args, episodes: int, seed: int, device, video_dir=None) -> tuple:
    """Returns, successes (whether the end goal was reached) and lengths of `episodes` greedy episodes on a fresh
    env."""
    env = gym.make(args.env_id, **({"render_mode": "rgb_array"} if video_dir else {}))
    if video_dir:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda _: True)
    returns, successes, lengths = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        ep = new_episode(env, obs, space, args.num_levels)
        run_level(args.num_levels - 1, ep, actors, spaces, args, device, None, None, False)
        returns.append(ep.episode_return)
        successes.append(bool(ep.reached[-1]))
        lengths.append(ep.length)
    env.close()
    return returns, successes, lengths


# Training
def check_args(args: Args) -> dict | None:
    """Reject bad input before anything is written; return the checkpoint to evaluate, if one is given."""
    checkpoint = check_common_args(args)
    if args.batch_size > args.buffer_size:
        fail(f"--batch-size {args.batch_size} is larger than --buffer-size {args.buffer_size}")
    check_positive(args, "num_levels", "time_limit", "buffer_size", "batch_size", "hidden_size", "learning_rate")
    for name in ("updates_per_episode", "hindsight_goals"):
        if getattr(args, name) < 0:
            fail(f"--{name.replace('_', '-')} must not be negative, got {getattr(args, name)}")
    check_unit_interval(args, "subgoal_test_rate", "random_action_rate", "gamma")
    obs_space, act_space = env_spaces(args.env_id)
    if not isinstance(act_space, gym.spaces.Box):
        fail(f"needs a Box action space, but {args.env_id} has {act_space}; use dqn.py")
    if not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all()):
        fail(f"needs finite action bounds, but {args.env_id} has {act_space}")
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        fail(f"needs flat Box observations, but {args.env_id} has {obs_space}")
    name = args.goal_space or args.env_id
    if name not in GOAL_SPACES:
        fail(f"has no goal space for {name} (it knows {', '.join(GOAL_SPACES)}); add one to GOAL_SPACES")
    if checkpoint is not None and len(checkpoint["actors"]) != args.num_levels:
        fail(f"{args.checkpoint} holds {len(checkpoint['actors'])} levels, not --num-levels {args.num_levels}")
    return checkpoint


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    rng = np.random.default_rng(args.seed)
    # one env, stepped by level 0 inside the levels' nested loops
    env = make_env(args.env_id, args.capture_video, run.video_dir)
    space = GOAL_SPACES[args.goal_space or args.env_id]
    obs_box = (env.observation_space.low, env.observation_space.high)
    spaces = level_spaces(space, args.num_levels, env.action_space.low, env.action_space.high)
    actors, critics, actor_optimizers, critic_optimizers, buffers = [], [], [], [], []
    for level, s in enumerate(spaces):
        goal_box, action_box = (s.goal_low, s.goal_high), (s.action_low, s.action_high)
        actors.append(Actor(obs_box, goal_box, action_box, args.hidden_size).to(run.device))
        critics.append(Critic(obs_box, goal_box, action_box, args.hidden_size, args.time_limit).to(run.device))
        actor_optimizers.append(torch.optim.Adam(actors[-1].parameters(), lr=args.learning_rate))
        critic_optimizers.append(torch.optim.Adam(critics[-1].parameters(), lr=args.learning_rate))
        obs_dim, act_dim, goal_dim = len(obs_box[0]), len(s.action_low), len(s.goal_low)
        buffers.append(ReplayBuffer(args.buffer_size, obs_dim, act_dim, goal_dim, run.device, args.seed + level))
    if checkpoint:
        for actor, state in zip(actors, checkpoint["actors"], strict=True):
            load_weights(run, actor, state)

    recent_successes = collections.deque(maxlen=10)
    global_step, episodes_done = 0, 0
    total_episodes = 0 if checkpoint else args.total_episodes
    # what a snapshot keeps, besides the loop's values, the RNGs of python, numpy and torch, and the episode statistics
    state = dict(
        actors=actors,
        critics=critics,
        actor_optimizers=actor_optimizers,
        critic_optimizers=critic_optimizers,
        buffers=buffers,
        rng=rng,
        env=env,
    )
    global_step, episodes_done, recent_successes = resume(
        run, state, global_step=global_step, episodes_done=episodes_done, recent_successes=recent_successes
    )
    for episode in range(episodes_done, total_episodes):
        # collect: the top level pursues the end goal; the levels below explore, test subgoals and store transitions
        obs, _ = env.reset(seed=args.seed if episode == 0 else None)
        ep = new_episode(env, obs, space, args.num_levels)
        run_level(args.num_levels - 1, ep, actors, spaces, args, run.device, rng, buffers, False)
        global_step += ep.length
        log_episode(run, global_step, ep.episode_return, ep.length)
        run.writer.add_scalar("charts/success", float(ep.reached[-1]), global_step)
        recent_successes.append(float(ep.reached[-1]))

        # update: `updates_per_episode` gradient steps of each level whose buffer holds a batch
        for level in range(args.num_levels):
            if buffers[level].size < args.batch_size or args.updates_per_episode == 0:
                continue
            actor, critic = actors[level], critics[level]
            for _ in range(args.updates_per_episode):
                batch = buffers[level].sample(args.batch_size)
                q_loss, q_values = critic_loss(actor, critic, batch, args.gamma, args.time_limit)
                check_finite(run, global_step, **{f"critic_loss_level{level}": q_loss})
                critic_optimizers[level].zero_grad(set_to_none=True)
                q_loss.backward()
                critic_optimizers[level].step()

                critic.requires_grad_(False)  # the actor's gradient flows through Q to the action, not into Q
                pi_loss = actor_loss(actor, critic, batch[0], batch[4], args.saturation_penalty)
                check_finite(run, global_step, **{f"actor_loss_level{level}": pi_loss})
                actor_optimizers[level].zero_grad(set_to_none=True)
                pi_loss.backward()
                actor_optimizers[level].step()
                critic.requires_grad_(True)
            run.writer.add_scalar(f"losses/critic_loss_level{level}", q_loss.item(), global_step)
            run.writer.add_scalar(f"losses/actor_loss_level{level}", pi_loss.item(), global_step)
            run.writer.add_scalar(f"losses/q_values_level{level}", q_values.mean().item(), global_step)
        log_progress(run, global_step, episode=episode + 1, recent_success=float(np.mean(recent_successes)))
        if evaluation_due(run):  # with --eval-frequency: the greedy policy as it trains
            log_evaluation(
                run, evaluate(actors, spaces, space, args, args.eval_episodes, args.seed + 20_000, run.device)[0]
            )
        snapshot(run, state, global_step=global_step, episodes_done=episode + 1, recent_successes=recent_successes)

    env.close()
    eval_returns, successes, lengths = evaluate(
        actors, spaces, space, args, args.eval_episodes, args.seed + 10_000, run.device, run.eval_video_dir
    )
    for length in lengths:
        run.writer.add_scalar("eval/episodic_length", length, global_step)
    success_rate = float(np.mean(successes))
    run.writer.add_scalar("eval/success_rate", success_rate, global_step)
    print(f"success_rate={success_rate:.2f} over {len(successes)} greedy episodes")
    return finish_run(run, global_step, eval_returns, model={"actors": [actor.state_dict() for actor in actors]})


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
