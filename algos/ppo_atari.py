"""PPO on images: proximal policy optimization from Atari frames (the ALE) and MinAtar grids, one network for both.

Schulman et al. (2017), "Proximal Policy Optimization Algorithms", arXiv:1707.06347, whose Atari experiments this
follows: vectorized envs collect a rollout; advantages come from GAE(γ, λ) (Schulman et al. 2016) and are normalized
per minibatch; the policy maximizes min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â) with ρ = π(a|s) / π_old(a|s), plus an entropy
bonus, over several epochs of minibatches, with a clipped value loss, gradient-norm clipping and a linearly annealed
learning rate. Actor and critic share one torso and differ in their last layer. A time-limit truncation is not a
termination: GAE bootstraps from the value of the observation the episode was cut off in.

The torso is chosen by the observation's shape: for a stack of 84×84 frames (the ALE) the Nature CNN (conv 32 8×8
stride 4, conv 64 4×4 stride 2, conv 64 3×3 stride 1, fc 512; pixels scaled by 1/255); for an H×W×C grid (MinAtar's
10×10×C) the network of Young & Tian (2019), "MinAtar: An Atari-Inspired Testbed for Thorough and Reproducible
Reinforcement Learning Experiments" (channels moved first, one conv 16 3×3 stride 1, fc 128).

ALE games get the Nature DQN's preprocessing from gymnasium's wrappers (as dqn_atari.py): up to 30 no-ops at a reset,
each action repeated for 4 frames with the max of the last two frames observed, 84×84 grayscale, the last 4 frames
stacked; FIRE pressed at a reset and after a lost life in games that have it; no sticky actions unless
--sticky-actions (ALE v5's 0.25; CleanRL's Atari numbers use NoFrameskip-v4 without them). For learning only, rewards
are clipped to sign(r) and a lost life ends the learner's episode (no value is bootstrapped across it): the game plays
on to its end, and the logged return is the game's score. MinAtar games are used as they are (sticky actions 0.1
included), their rewards unclipped.

The defaults are the paper's Atari settings with MinAtar's network (8 envs, rollouts of 128 steps, 4 epochs of 4
minibatches, γ 0.99, λ 0.95, entropy 0.01, the learning rate annealed), but the clipping ε 0.2 and a learning rate of
2.5e-3, ten times the paper's.

Spaces: image observations (a 3-axis Box: the ALE's frames, stacked 4×84×84; MinAtar's 10×10×C grids), Discrete actions
(for vector observations use ppo.py; for Box actions ppo_continuous.py, which takes vectors).
Run: python algos/ppo_atari.py --env-id MinAtar/Breakout-v1
Run (the paper's Atari settings, as CleanRL's ppo_atari.py): python algos/ppo_atari.py --env-id ALE/Pong-v5
    --total-timesteps 10000000 --num-envs 8 --num-steps 128 --learning-rate 2.5e-4 --num-minibatches 4
    --update-epochs 4 --clip-coef 0.1 --ent-coef 0.01 --gamma 0.99 --gae-lambda 0.95
Benchmarks: the minatar and atari suites (benchmarks/suites.py), not run yet; how the defaults were chosen:
benchmarks/NOTES.md.
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

import ale_py
import gymnasium as gym
import minatar.gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

gym.register_envs(ale_py)  # the ALE/... ids
if "MinAtar/Breakout-v1" not in gym.registry:
    minatar.gym.register_envs()  # the MinAtar/... ids


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
    env_id: str = "MinAtar/Breakout-v1"
    """the gymnasium id of the env: an ALE or a MinAtar game (defaults tuned on MinAtar/Breakout-v1)"""
    total_timesteps: int = 1_000_000
    """env steps, all envs together"""
    num_envs: int = 8
    """the number of vectorized envs"""
    eval_episodes: int = 10
    """episodes of the final deterministic (argmax) evaluation"""
    eval_frequency: int = 0
    """evaluate the greedy policy every N env steps, logged and written to evaluations.jsonl (0: only at the end)"""
    learning_rate: float = 2.5e-3
    """the Adam learning rate (at the start, when annealed)"""
    num_steps: int = 128
    """steps per env in each rollout"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over training"""
    gamma: float = 0.99
    """the discount factor γ"""
    gae_lambda: float = 0.95
    """the λ of GAE"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """epochs of minibatch updates per rollout"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient ε"""
    clip_vloss: bool = True
    """clip the value loss as the policy loss is clipped"""
    ent_coef: float = 0.01
    """the entropy bonus coefficient"""
    vf_coef: float = 0.5
    """the value loss coefficient"""
    max_grad_norm: float = 0.5
    """the maximum global norm of the gradient"""
    target_kl: float | None = None
    """stop the epochs of an update early when the approximate KL exceeds this"""
    sticky_actions: bool = False
    """ALE games: repeat the previous action with probability 0.25 (ALE v5's default); MinAtar keeps its own 0.1"""


# The algorithm: environment, actor-critic, rollout, GAE and the clipped-surrogate update
FRAME_STACK = 4  # ALE observations: the last 4 preprocessed frames


def is_atari(env_id: str) -> bool:
    """An ALE game (ale_py's AtariEnv), which gets the Atari preprocessing; any other env (MinAtar) is used as it is."""
    return "ale_py" in str(gym.spec(env_id).entry_point)


def make_env(env_id: str, idx: int, capture_video: bool, video_dir: str, sticky_actions: bool, every_episode=False):
    def thunk():
        atari = is_atari(env_id)
        # the ALE's own frame skipping off: AtariPreprocessing repeats each action and max-pools the last two frames
        ale_kwargs = {"frameskip": 1, "repeat_action_probability": 0.25 if sticky_actions else 0.0} if atari else {}
        if capture_video and idx == 0:
            env = gym.make(env_id, render_mode="rgb_array", **ale_kwargs)
            trigger = (lambda _: True) if every_episode else None
            env = gym.wrappers.RecordVideo(env if atari else GridVideoFrames(env), video_dir, episode_trigger=trigger)
        else:
            env = gym.make(env_id, **ale_kwargs)
        if not atari:
            return env
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True
        )
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = FireReset(env)
        env = LifeLossInfo(env)
        return gym.wrappers.FrameStackObservation(env, FRAME_STACK)

    return thunk


class FireReset(gym.Wrapper):
    """Press FIRE after every reset and every lost life, in games that wait for it to go on (Breakout's balls), as
    CleanRL's Atari scripts do (there the lost life is a reset): a greedy agent that never chose FIRE would stall."""

    def __init__(self, env):
        super().__init__(env)
        self.fire = env.unwrapped.get_action_meanings().index("FIRE")

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(self.fire)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info

    def step(self, action):
        lives = self.env.unwrapped.ale.lives()
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.env.unwrapped.ale.lives() < lives and not (terminated or truncated):
            obs, fire_reward, terminated, truncated, info = self.env.step(self.fire)
            reward += fire_reward
        return obs, reward, terminated, truncated, info


class LifeLossInfo(gym.Wrapper):
    """Mark a lost life in `info["life_lost"]`: the learner takes it as a terminal (Mnih et al. 2015), while the game
    plays on, so that the episode the vector env ends (and logs) is the whole game."""

    def __init__(self, env):
        super().__init__(env)
        self.lives = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, {**info, "life_lost": False}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        life_lost, self.lives = lives < self.lives, lives
        return obs, reward, terminated, truncated, {**info, "life_lost": life_lost}


class GridVideoFrames(gym.Wrapper):
    """MinAtar renders its 10×10 grid as floats in [0, 1]; a video wants bytes and more pixels: 16×16 per cell."""

    def render(self):
        grid = self.env.render()
        return (np.kron(grid, np.ones((16, 16, 1))) * 255).astype(np.uint8)


def learning_signals(rewards: np.ndarray, terminations: np.ndarray, infos: dict, atari: bool) -> tuple:
    """The reward and termination the learner sees. On the ALE (Mnih et al. 2015): sign(r), and a lost life ends the
    learner's episode though the game plays on; the logged returns (RecordEpisodeStatistics) stay the game's score.
    Elsewhere: the env's own."""
    if not atari:
        return rewards, terminations
    life_lost = infos["life_lost"]
    if "final_info" in infos:  # a step that ended a game (same-step autoreset) has its own info in final_info
        life_lost = np.where(infos["_final_info"], infos["final_info"].get("life_lost", False), life_lost)
    return np.sign(rewards), terminations | life_lost


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain `std` and constant biases."""
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    """π(·|s) and V(s) from images on one torso chosen by their shape: the Nature CNN for a stack of 84×84 frames
    (uint8 pixels scaled to [0, 1]); the MinAtar network for an H×W×C grid (channels moved first)."""

    def __init__(self, obs_shape: tuple, n_actions: int):
        super().__init__()
        self.frames = tuple(obs_shape[1:]) == (84, 84)
        if self.frames:  # Mnih et al. (2015)
            self.torso = nn.Sequential(
                layer_init(nn.Conv2d(obs_shape[0], 32, 8, stride=4)),
                nn.ReLU(),
                layer_init(nn.Conv2d(32, 64, 4, stride=2)),
                nn.ReLU(),
                layer_init(nn.Conv2d(64, 64, 3, stride=1)),
                nn.ReLU(),
                nn.Flatten(),
                layer_init(nn.Linear(64 * 7 * 7, 512)),
                nn.ReLU(),
            )
        else:  # Young & Tian (2019)
            height, width, channels = obs_shape
            self.torso = nn.Sequential(
                layer_init(nn.Conv2d(channels, 16, 3, stride=1)),
                nn.ReLU(),
                nn.Flatten(),
                layer_init(nn.Linear(16 * (height - 2) * (width - 2), 128)),
                nn.ReLU(),
            )
        hidden = self.torso[-2].out_features
        self.actor = layer_init(nn.Linear(hidden, n_actions), std=0.01)
        self.critic = layer_init(nn.Linear(hidden, 1), std=1.0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.torso(x.float() / 255.0 if self.frames else x.float().permute(0, 3, 1, 2))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(self.features(x)).squeeze(-1)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        """Sample a ~ π(·|s) unless `action` is given; return a, log π(a|s), the entropy of π(·|s) and V(s)."""
        hidden = self.features(x)
        log_probs = torch.log_softmax(self.actor(hidden), dim=-1)
        if action is None:
            action = torch.multinomial(log_probs.exp(), 1).squeeze(-1)
        log_prob = log_probs.gather(-1, action[..., None]).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)  # H = −Σ_a π(a|s) log π(a|s)
        return action, log_prob, entropy, self.critic(hidden).squeeze(-1)

    def act_deterministic(self, x: torch.Tensor) -> torch.Tensor:
        return self.actor(self.features(x)).argmax(dim=-1)


class Rollout:
    """The storage of one rollout, allocated once: a row per step, a column per env; observations as the env gives
    them (bytes for ALE frames, booleans for MinAtar grids)."""

    def __init__(self, num_steps: int, num_envs: int, obs_shape: tuple, obs_dtype, device):
        shape = (num_steps, num_envs)
        self.obs = torch.zeros(shape + obs_shape, dtype=obs_dtype, device=device)
        self.actions = torch.zeros(shape, dtype=torch.long, device=device)
        self.logprobs = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.terminations = torch.zeros(shape, device=device)
        self.dones = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.final_values = torch.zeros(shape, device=device)  # V(final obs) where an episode was truncated, else 0

    def batch(self, advantages: torch.Tensor, returns: torch.Tensor) -> dict:
        """The rollout as one batch of num_steps × num_envs rows, with its advantages and value targets."""
        rows = dict(obs=self.obs, actions=self.actions, logprobs=self.logprobs, values=self.values)
        return {name: x.flatten(0, 1) for name, x in dict(rows, advantages=advantages, returns=returns).items()}


def true_next_obs(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each env's step led to. With same-step autoreset, `next_obs` of an env whose episode just ended
    is already the first observation of its next episode; the observation the episode ended in is in `final_obs`."""
    if "_final_obs" not in infos:
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


def collect_rollout(envs, agent, rollout: Rollout, next_obs: torch.Tensor, run, global_step: int, atari: bool) -> tuple:
    """Fill `rollout` with num_steps steps of every env, a ~ π(·|s), and log the episodes that end (whole games, their
    scores); the rewards and terminations stored are the learner's (see learning_signals). Returns the observation to
    go on from and the step count."""
    device = run.device
    for step in range(len(rollout.obs)):
        global_step += envs.num_envs
        rollout.obs[step] = next_obs
        with torch.inference_mode():
            action, logprob, _, value = agent.get_action_and_value(next_obs)
        rollout.actions[step], rollout.logprobs[step], rollout.values[step] = action, logprob, value

        next_obs_np, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
        log_episodes(run, global_step, infos)
        learn_reward, learn_terminated = learning_signals(reward, terminated, infos, atari)
        rollout.rewards[step] = torch.as_tensor(learn_reward, dtype=torch.float32, device=device)
        rollout.terminations[step] = torch.as_tensor(learn_terminated, device=device)
        rollout.dones[step] = torch.as_tensor(learn_terminated | truncated, device=device)
        rollout.final_values[step] = 0.0
        if truncated.any():
            # truncation is not termination: keep V(s_final) to bootstrap from
            final_obs = true_next_obs(next_obs_np, infos)[truncated]
            with torch.inference_mode():
                final_value = agent.get_value(torch.as_tensor(final_obs, device=device))
            rollout.final_values[step, torch.as_tensor(truncated, device=device)] = final_value
        next_obs = torch.as_tensor(next_obs_np, device=device)
    return next_obs, global_step


def compute_gae(rewards, values, next_values, terminations, dones, gamma: float, gae_lambda: float):
    """GAE(γ, λ) over a rollout of shape (num_steps, num_envs).

    next_values[t] is V of the observation step t really led to (the final observation when the episode ended at t);
    terminations[t] marks that observation as terminal (its value is 0); dones[t] marks the end of the episode at t,
    terminated or truncated, where the advantage is not carried over from the next episode.
    Returns the advantages Â and the returns Â + V (the value targets).
    """
    advantages = torch.zeros_like(rewards)
    last_advantage = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = (
            rewards[t] + gamma * (1.0 - terminations[t]) * next_values[t] - values[t]
        )  # δ_t = r_t + γ V(s') − V(s_t)
        last_advantage = delta + gamma * gae_lambda * (1.0 - dones[t]) * last_advantage  # Â_t = δ_t + γλ Â_{t+1}
        advantages[t] = last_advantage
    return advantages, advantages + values


def estimate_advantages(agent, rollout: Rollout, next_obs: torch.Tensor, gamma: float, gae_lambda: float) -> tuple:
    """compute_gae over the rollout; V(s') is the next stored value, V(next_obs) after the last step, or V(s_final)
    where the episode ended."""
    with torch.inference_mode():
        next_values = torch.cat([rollout.values[1:], agent.get_value(next_obs)[None]])
    next_values = torch.where(rollout.dones.bool(), rollout.final_values, next_values)
    return compute_gae(
        rollout.rewards, rollout.values, next_values, rollout.terminations, rollout.dones, gamma, gae_lambda
    )


def ppo_loss(agent, mb: dict, args: Args) -> tuple:
    """The loss −L_clip + c_v L_V − c_e H of a minibatch, and its parts and diagnostics (a dict).

    L_clip = E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)] with ρ = π(a|s) / π_old(a|s), Â normalized over the minibatch with
    `norm_adv`; L_V = ½ E[(V(s) − R)²], or with `clip_vloss` ½ E[max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²)];
    H the mean entropy of π(·|s).
    """
    _, logprob, entropy, value = agent.get_action_and_value(mb["obs"], mb["actions"])
    logratio = logprob - mb["logprobs"]
    ratio = logratio.exp()  # ρ
    advantages = mb["advantages"]
    if args.norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    # L_clip as a loss to minimize: the larger of the two negated terms
    clipped_ratio = torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
    pg_loss = torch.max(-advantages * ratio, -advantages * clipped_ratio).mean()
    if args.clip_vloss:
        v_clipped = mb["values"] + torch.clamp(value - mb["values"], -args.clip_coef, args.clip_coef)
        v_loss = 0.5 * torch.max((value - mb["returns"]) ** 2, (v_clipped - mb["returns"]) ** 2).mean()
    else:
        v_loss = 0.5 * ((value - mb["returns"]) ** 2).mean()
    entropy_loss = entropy.mean()
    loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
    with torch.no_grad():
        stats = {
            "policy_loss": pg_loss.detach(),
            "value_loss": v_loss.detach(),
            "entropy": entropy_loss.detach(),
            "old_approx_kl": (-logratio).mean(),
            "approx_kl": ((ratio - 1) - logratio).mean(),  # unbiased, low-variance estimator of KL(π_old‖π)
            "clipfrac": ((ratio - 1.0).abs() > args.clip_coef).float().mean(),
        }
    return loss, stats


def ppo_update(agent, optimizer, batch: dict, args: Args, run, global_step: int) -> dict:
    """`update_epochs` epochs over the batch in `num_minibatches` random minibatches, a gradient step on ppo_loss each
    with the gradient's norm clipped; the epochs stop early once the approximate KL exceeds `target_kl`. Returns the
    last minibatch's losses and diagnostics, with the clip fraction over all of them."""
    batch_size = len(batch["obs"])
    minibatch_size = batch_size // args.num_minibatches
    clipfracs = []
    for _epoch in range(args.update_epochs):
        b_inds = torch.randperm(batch_size, device=run.device)
        for start in range(0, batch_size, minibatch_size):
            loss, stats = ppo_loss(
                agent, {k: x[b_inds[start : start + minibatch_size]] for k, x in batch.items()}, args
            )
            check_finite(run, global_step, **{name: stats[name] for name in ("policy_loss", "value_loss", "entropy")})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm, foreach=True)
            optimizer.step()
            clipfracs.append(stats["clipfrac"])
        if args.target_kl is not None and stats["approx_kl"] > args.target_kl:
            break
    return {**stats, "clipfrac": torch.stack(clipfracs).mean()}


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[R − V] / Var[R]: how much of the return the value function predicts (NaN when the returns are equal)."""
    var_returns = returns.var()
    return float("nan") if var_returns == 0 else (1 - (returns - values).var() / var_returns).item()


def evaluate(
    agent, env_id: str, episodes: int, seed: int, device, video_dir: str | None = None, sticky_actions=False
) -> list:
    """Returns (the games' scores) of `episodes` episodes with the most likely action, on a fresh env."""
    env = make_env(env_id, 0, video_dir is not None, video_dir, sticky_actions, every_episode=True)()
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, episode_return = False, 0.0
        while not done:
            with torch.inference_mode():
                action = agent.act_deterministic(torch.as_tensor(obs, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(int(action.item()))
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    env.close()
    return returns


class GameStates:
    """What a snapshot must keep of the envs besides what the plumbing's `env_state` reads from each layer (numbers,
    arrays, RNGs): the ALE emulator's state with its RNG, MinAtar's game (plain python objects and a numpy
    RandomState), the frame stack and the two frames max-pooled. With it, a resumed run continues its games exactly,
    mid-episode."""

    def __init__(self, envs):
        self.envs = envs

    def state_dict(self) -> dict:
        games = []
        for env in self.envs.unwrapped.envs:
            game, saved = env.unwrapped, {}
            if isinstance(game, ale_py.AtariEnv):
                ale_state = game.ale.cloneState(include_rng=True).serialize()
                saved["ale"] = np.frombuffer(ale_state, dtype=np.uint8).copy()
                saved["frame_stack"] = list(find_layer(env, gym.wrappers.FrameStackObservation).obs_queue)
                saved["max_pool"] = list(find_layer(env, gym.wrappers.AtariPreprocessing).obs_buffer)
            elif isinstance(game, minatar.gym.BaseEnv):  # a seeded minatar.Environment shares its RandomState
                saved["minatar"] = {k: v for k, v in vars(game.game.env).items() if k != "random"}
                saved["random"], saved["last_action"] = game.game.random.get_state(), game.game.last_action
            games.append(state_of(saved))
        return {"games": games}

    def load_state_dict(self, state: dict) -> None:
        for env, data in zip(self.envs.unwrapped.envs, state["games"], strict=True):
            game, saved = env.unwrapped, restore_state(None, data)
            if "ale" in saved:
                game.ale.restoreState(ale_py.ALEState(saved["ale"].tobytes()))
                frame_stack = find_layer(env, gym.wrappers.FrameStackObservation)
                frame_stack.obs_queue = collections.deque(saved["frame_stack"], maxlen=frame_stack.stack_size)
                max_pool = find_layer(env, gym.wrappers.AtariPreprocessing).obs_buffer
                for buffer, frame in zip(max_pool, saved["max_pool"], strict=True):
                    buffer[...] = frame  # the last step's last two frames
            elif "minatar" in saved:
                vars(game.game.env).update(saved["minatar"])
                game.game.random.set_state(saved["random"])
                game.game.last_action = saved["last_action"]


def find_layer(env, wrapper_type):
    """The layer of a wrapped env that is a `wrapper_type`."""
    while not isinstance(env, wrapper_type):
        env = env.env
    return env


# Training
def check_args(args: Args) -> dict | None:
    """Reject bad input before anything is written; return the checkpoint to evaluate, if one is given."""
    checkpoint = check_common_args(args)
    check_positive(args, "max_grad_norm")
    check_positive(args, "num_envs", "num_steps", "num_minibatches", "update_epochs", "learning_rate")
    check_unit_interval(args, "gamma", "gae_lambda")
    batch_size = args.num_envs * args.num_steps
    if checkpoint is None and args.total_timesteps < batch_size:
        fail(f"--total-timesteps {args.total_timesteps} is less than one rollout (num_envs × num_steps = {batch_size})")
    if batch_size % args.num_minibatches:
        fail(f"num_envs × num_steps = {batch_size} is not divisible by --num-minibatches {args.num_minibatches}")
    _, act_space = env_spaces(args.env_id, images=True)
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(
            f"needs a Discrete action space, but {args.env_id} has {act_space}; no script here takes images with Box "
            "actions (ppo_continuous.py takes Box actions with vector observations)"
        )
    return checkpoint


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    atari = is_atari(args.env_id)
    # same-step autoreset, so that no transition crosses a reset (see `true_next_obs`)
    envs = gym.vector.SyncVectorEnv(
        [
            make_env(args.env_id, i, args.capture_video, run.video_dir, args.sticky_actions)
            for i in range(args.num_envs)
        ],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)  # the games' scores: unclipped rewards, whole games
    obs_shape = envs.single_observation_space.shape

    agent = Agent(obs_shape, int(envs.single_action_space.n)).to(run.device)
    if checkpoint:
        load_weights(run, agent, checkpoint["agent"])
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)
    next_obs = torch.as_tensor(envs.reset(seed=args.seed)[0], device=run.device)
    rollout = Rollout(args.num_steps, args.num_envs, obs_shape, next_obs.dtype, run.device)

    global_step = 0
    num_iterations = 0 if checkpoint else args.total_timesteps // (args.num_envs * args.num_steps)
    # what a snapshot keeps, besides the loop's values, the RNGs of python, numpy and torch, and the episode statistics
    state = dict(
        agent=agent,
        optimizer=optimizer,
        envs=envs,
        games=GameStates(envs),  # what env_state cannot read: the ALE's emulator, MinAtar's python objects
    )
    global_step, next_obs = resume(run, state, global_step=global_step, next_obs=next_obs)
    for iteration in range(global_step // (args.num_envs * args.num_steps), num_iterations):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - iteration / num_iterations) * args.learning_rate
        # collect: num_steps steps of every env with the current policy
        next_obs, global_step = collect_rollout(envs, agent, rollout, next_obs, run, global_step, atari)
        # estimate: advantages by GAE(γ, λ), and the value targets
        advantages, returns = estimate_advantages(agent, rollout, next_obs, args.gamma, args.gae_lambda)
        batch = rollout.batch(advantages, returns)
        # update: epochs of minibatch steps on the clipped surrogate, the value loss and the entropy bonus
        losses = ppo_update(agent, optimizer, batch, args, run, global_step)

        losses["explained_variance"] = explained_variance(batch["values"], batch["returns"])
        run.writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        for name, value in losses.items():
            run.writer.add_scalar(f"losses/{name}", float(value), global_step)
        log_progress(run, global_step)
        if evaluation_due(run):  # with --eval-frequency: the greedy policy as it trains
            log_evaluation(
                run,
                evaluate(
                    agent, args.env_id, args.eval_episodes, args.seed + 20_000, run.device, None, args.sticky_actions
                ),
            )
        snapshot(run, state, global_step=global_step, next_obs=next_obs)

    envs.close()
    eval_returns = evaluate(
        agent, args.env_id, args.eval_episodes, args.seed + 10_000, run.device, run.eval_video_dir, args.sticky_actions
    )
    return finish_run(run, global_step, eval_returns, model={"agent": agent.state_dict()})


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
