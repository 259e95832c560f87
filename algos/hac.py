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
−H, where σ is flat and a squared-error critic stops learning (with it, level 0 of one MountainCar seed had learned
nothing after 150 episodes). The actor maximizes Q, plus a small penalty on its pre-tanh outputs that keeps it out
of tanh's flat ends (the top level of that seed once proposed the same saturated subgoal for 250 episodes). Both are
additions to the paper. There are no target networks (nor in the paper's code): the bounded Q and the short horizons
keep the targets stable. Exploration: a uniformly random action `random_action_rate` of the time, else Gaussian noise
of `exploration_noise` times half of each action dimension's range.

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
"""

# Imports
import collections
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NoReturn

import gymnasium as gym
import numpy as np
import torch
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
    """record videos of the training env and of the evaluation episodes into the run folder"""
    save_model: bool = False
    """write the trained weights to `{run folder}/{exp_name}.pt`"""
    checkpoint: str | None = None
    """path of a saved model: load it and only evaluate"""
    log_dir: str = "runs"
    """parent folder of the run folder"""

    # Algorithm specific arguments
    env_id: str = "MountainCarContinuous-v0"
    """the gymnasium id of the env, one with an entry in GOAL_SPACES (defaults tuned on MountainCarContinuous-v0)"""
    goal_space: str | None = None
    """the GOAL_SPACES entry to use (default: env_id's own), for a variant of a known env under another id"""
    total_episodes: int = 300
    """training episodes (the budget; the summary's total_timesteps counts the env steps they took)"""
    eval_episodes: int = 20
    """episodes of the final greedy evaluation (20: the success rate's sample)"""
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


# Goal spaces, networks, replay buffer and the algorithm's math
def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one clear line on stderr and exit status `status` (2: bad input)."""
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


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


def check_args(args: Args) -> None:
    """Reject bad input before anything is written."""
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        fail(f"checkpoint file not found: {args.checkpoint}")
    if args.checkpoint is None and args.total_episodes <= 0:
        fail(f"--total-episodes must be positive, got {args.total_episodes}")
    for name in ("eval_episodes", "num_levels", "time_limit", "buffer_size", "batch_size", "hidden_size"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ("updates_per_episode", "hindsight_goals"):
        if getattr(args, name) < 0:
            fail(f"--{name.replace('_', '-')} must not be negative, got {getattr(args, name)}")
    for name in ("subgoal_test_rate", "random_action_rate", "gamma"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            fail(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")
    try:
        env = gym.make(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Box):
        fail(f"hac.py needs a Box action space, but {args.env_id} has {act_space}; use dqn.py")
    if not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all()):
        fail(f"hac.py needs finite action bounds, but {args.env_id} has {act_space}")
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        fail(f"hac.py needs flat Box observations, but {args.env_id} has {obs_space}")
    name = args.goal_space or args.env_id
    if name not in GOAL_SPACES:
        fail(f"hac.py has no goal space for {name} (it knows {', '.join(GOAL_SPACES)}); add one to GOAL_SPACES")


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
    return nn.functional.binary_cross_entropy_with_logits(logits, -target / time_limit)


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
    """A FIFO of goal-conditioned transitions (s, a, r, s', g, done) in preallocated numpy arrays, filled many rows at
    a time and sampled uniformly; at capacity the oldest rows are overwritten."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, goal_dim: int, seed: int):
        dims = (obs_dim, act_dim, None, obs_dim, goal_dim, None)
        self.storage = [np.zeros((capacity, d) if d else capacity, dtype=np.float32) for d in dims]
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.rng = np.random.default_rng(seed)

    def add(self, *rows) -> None:
        """Append rows: arrays (obs, actions, rewards, next_obs, goals, dones) with the row axis first."""
        n = min(len(rows[0]), self.capacity)
        idx = (self.pos + np.arange(n)) % self.capacity
        for storage, values in zip(self.storage, rows, strict=True):
            storage[idx] = values[len(values) - n :]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, device) -> tuple:
        """(obs, actions, rewards, next_obs, goals, dones) of `batch_size` rows drawn uniformly with replacement."""
        idx = self.rng.integers(self.size, size=batch_size)
        return tuple(torch.as_tensor(storage[idx], device=device) for storage in self.storage)


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


def check_finite(loss: torch.Tensor, name: str, level: int, global_step: int, writer, env) -> None:
    """Stop the run (exit status 1), keeping what was logged, when a loss is NaN or infinite."""
    if not torch.isfinite(loss):
        writer.close()
        env.close()
        fail(f"{name} of level {level} became {loss.item()} at global step {global_step}; stopping", status=1)


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
    checkpoint = torch.load(args.checkpoint, map_location="cpu") if args.checkpoint else None
    if checkpoint is not None and len(checkpoint["actors"]) != args.num_levels:
        fail(f"{args.checkpoint} holds {len(checkpoint['actors'])} levels, not --num-levels {args.num_levels}")
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

    # env setup: one env, stepped by level 0 inside the levels' nested loops
    env = make_env(args.env_id, args.capture_video, os.path.join(run_dir, "videos"))
    space = GOAL_SPACES[args.goal_space or args.env_id]
    obs_box = (env.observation_space.low, env.observation_space.high)
    spaces = level_spaces(space, args.num_levels, env.action_space.low, env.action_space.high)
    actors, critics, actor_optimizers, critic_optimizers, buffers = [], [], [], [], []
    for level, s in enumerate(spaces):
        goal_box, action_box = (s.goal_low, s.goal_high), (s.action_low, s.action_high)
        actors.append(Actor(obs_box, goal_box, action_box, args.hidden_size).to(device))
        critics.append(Critic(obs_box, goal_box, action_box, args.hidden_size, args.time_limit).to(device))
        actor_optimizers.append(torch.optim.Adam(actors[-1].parameters(), lr=args.learning_rate))
        critic_optimizers.append(torch.optim.Adam(critics[-1].parameters(), lr=args.learning_rate))
        obs_dim, act_dim, goal_dim = len(obs_box[0]), len(s.action_low), len(s.goal_low)
        buffers.append(ReplayBuffer(args.buffer_size, obs_dim, act_dim, goal_dim, args.seed + level))
    if checkpoint is not None:
        for actor, state in zip(actors, checkpoint["actors"], strict=True):
            actor.load_state_dict(state)

    recent_returns = collections.deque(maxlen=10)
    recent_successes = collections.deque(maxlen=10)
    global_step = 0
    total_episodes = 0 if args.checkpoint else args.total_episodes
    start_time = last_print = time.time()
    for episode in range(total_episodes):
        obs, _ = env.reset(seed=args.seed if episode == 0 else None)
        ep = new_episode(env, obs, space, args.num_levels)
        # ALGO LOGIC: the top level pursues the end goal; the levels below explore, test subgoals and store transitions
        run_level(args.num_levels - 1, ep, actors, spaces, args, device, rng, buffers, False)
        global_step += ep.length
        writer.add_scalar("charts/episodic_return", ep.episode_return, global_step)
        writer.add_scalar("charts/episodic_length", ep.length, global_step)
        writer.add_scalar("charts/success", float(ep.reached[-1]), global_step)
        recent_returns.append(ep.episode_return)
        recent_successes.append(float(ep.reached[-1]))

        # ALGO LOGIC: training, `updates_per_episode` gradient steps of each level once its buffer holds a batch
        for level in range(args.num_levels):
            if buffers[level].size < args.batch_size:
                continue
            actor, critic = actors[level], critics[level]
            for _ in range(args.updates_per_episode):
                b_obs, b_actions, b_rewards, b_next_obs, b_goals, b_dones = buffers[level].sample(
                    args.batch_size, device
                )
                with torch.no_grad():
                    # y = r + γ (1 − done) Q(s', π(s', g), g), clipped to [−H, 0]
                    next_q_values = critic(b_next_obs, b_goals, actor(b_next_obs, b_goals))
                    target = hac_target(b_rewards, next_q_values, b_dones, args.gamma, args.time_limit)
                logits = critic.logits(b_obs, b_goals, b_actions)
                q_values = -args.time_limit * torch.sigmoid(logits)
                critic_loss = critic_cross_entropy(logits, target, args.time_limit)
                check_finite(critic_loss, "critic_loss", level, global_step, writer, env)
                critic_optimizers[level].zero_grad(set_to_none=True)
                critic_loss.backward()
                critic_optimizers[level].step()

                # ∇_φ J = E[∇_a Q(s, g, a)|_{a=π(s, g)} ∇_φ π(s, g)]: the gradient flows through the critic, not into it
                critic.requires_grad_(False)
                pre_tanh = actor.pre_tanh(b_obs, b_goals)
                actor_loss = -critic(b_obs, b_goals, actor.squash(pre_tanh)).mean()
                actor_loss = actor_loss + args.saturation_penalty * (pre_tanh**2).mean()
                check_finite(actor_loss, "actor_loss", level, global_step, writer, env)
                actor_optimizers[level].zero_grad(set_to_none=True)
                actor_loss.backward()
                actor_optimizers[level].step()
                critic.requires_grad_(True)
            writer.add_scalar(f"losses/critic_loss_level{level}", critic_loss.item(), global_step)
            writer.add_scalar(f"losses/actor_loss_level{level}", actor_loss.item(), global_step)
            writer.add_scalar(f"losses/q_values_level{level}", q_values.mean().item(), global_step)

        if time.time() - last_print >= 2.0:
            last_print = time.time()
            sps = int(global_step / (last_print - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)
            print(
                f"episode={episode + 1} step={global_step} sps={sps} recent_return={np.mean(recent_returns):.1f} "
                f"recent_success={np.mean(recent_successes):.2f}",
                flush=True,
            )

    wall_time = time.time() - start_time
    env.close()
    if args.save_model:
        torch.save({"actors": [a.state_dict() for a in actors]}, os.path.join(run_dir, f"{args.exp_name}.pt"))

    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns, successes, lengths = evaluate(
        actors, spaces, space, args, args.eval_episodes, args.seed + 10_000, device, eval_video_dir
    )
    for i, (episode_return, length) in enumerate(zip(eval_returns, lengths, strict=True)):
        writer.add_scalar("eval/episodic_return", episode_return, i)
        writer.add_scalar("eval/episodic_length", length, i)
    success_rate = float(np.mean(successes))
    writer.add_scalar("eval/success_rate", success_rate, global_step)
    writer.close()

    summary = {
        "algo": "hac",
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
        f"eval_return_mean={summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f}, "
        f"success_rate={success_rate:.2f}; run folder {run_dir}"
    )
    if args.track:
        wandb.finish()
    return summary


if __name__ == "__main__":
    train(tyro.cli(Args))
