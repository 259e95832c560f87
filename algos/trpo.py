"""TRPO: trust region policy optimization, for Discrete and Box actions.

Schulman et al. (2015), "Trust Region Policy Optimization", ICML; advantages by GAE from Schulman et al. (2016),
"High-Dimensional Continuous Control Using Generalized Advantage Estimation", ICLR. Vectorized envs collect a rollout
as in ppo.py; then the policy takes the step that maximizes the surrogate L(θ) = E[π_θ(a|s) / π_old(a|s) Â] subject
to the mean KL(π_old‖π_θ) ≤ δ (`max_kl`). With L linearized and the KL approximated to second order by the Fisher
matrix F, the step is along s = F⁻¹g (g = ∇L), found by conjugate gradient from Fisher-vector products (the gradient
of (∇KL)·v, by double backpropagation, never forming F), scaled to the maximal step β s with β = √(2δ / sᵀFs); a
backtracking line search then shrinks it geometrically until the surrogate really improves and the KL really stays
within δ, and keeps the old policy if no fraction does. The value function is trained separately, by several epochs
of Adam on the GAE returns. A time-limit truncation is not a termination: GAE bootstraps from the value of the
observation the episode was cut off in.
The policy is categorical for Discrete actions and a diagonal Gaussian with state-independent log standard deviations
for Box actions (sampled actions are clipped to the bounds when sent to the env; the log-probability is that of the
unclipped sample).
The defaults are the RL Zoo's CartPole settings, with δ shrunk linearly to 0 over training (`--no-anneal-kl` keeps
the paper's constant δ).

Spaces: Box observations; Discrete or Box actions.
Run: python algos/trpo.py --env-id CartPole-v1
Benchmarks: benchmarks/results/quick/README.md (CartPole), benchmarks/results/classic/README.md, and
benchmarks/POLICY_GRADIENT.md (Pendulum-v1 and Hopper-v5, with their flags).
"""

# Imports
import atexit
import collections
import functools
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
    total_timesteps: int = 100_000
    """env steps, all envs together"""
    num_envs: int = 2
    """the number of vectorized envs"""
    eval_episodes: int = 10
    """episodes of the final deterministic (most likely or mean action) evaluation"""
    eval_frequency: int = 0
    """evaluate the greedy policy every N env steps, logged and written to evaluations.jsonl (0: only at the end)"""
    num_steps: int = 512
    """steps per env in each rollout"""
    gamma: float = 0.99
    """the discount factor γ"""
    gae_lambda: float = 0.98
    """the λ of GAE"""
    norm_adv: bool = True
    """normalize advantages over each batch"""
    max_kl: float = 0.01
    """the trust region's size δ: the largest mean KL(π_old‖π) a step may take (at the start, when annealed)"""
    anneal_kl: bool = True
    """shrink δ linearly to 0 over training, as ppo.py and a2c.py anneal their learning rates"""
    cg_iters: int = 15
    """conjugate-gradient iterations for the step direction F⁻¹g"""
    cg_damping: float = 1e-3
    """added to the Fisher matrix (F + damping·I) to keep the conjugate-gradient solve well conditioned"""
    backtrack_iters: int = 10
    """the line search's tries: fractions 1, c, c², … of the maximal step"""
    backtrack_coeff: float = 0.8
    """the line search's shrink factor c"""
    vf_learning_rate: float = 1e-3
    """the Adam learning rate of the value function"""
    vf_epochs: int = 20
    """epochs of value-function updates per rollout"""
    vf_minibatches: int = 2
    """minibatches per value-function epoch"""

    norm_obs: bool = False
    """normalize observations by running mean and standard deviation (clipped to ±10)"""
    norm_reward: bool = False
    """scale rewards by the running standard deviation of the discounted return (clipped to ±10)"""


# The algorithm: environment, policy and critic, rollout, GAE, the trust-region step and the critic's update
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


class RunningMeanStd:
    """Running mean and variance of a stream of batches, merged batch by batch (Chan et al. 1979)."""

    def __init__(self, shape: tuple = ()):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, batch_count = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray, clip: float = 10.0) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip)


class RewardScaler:
    """r / std(G), clipped to ±10, with G_t = γ G_{t−1} + r_t the running discounted return of each env, reset at
    episode ends; std(G) is a running estimate over all envs and steps."""

    def __init__(self, num_envs: int, gamma: float):
        self.return_rms, self.returns, self.gamma = RunningMeanStd(), np.zeros(num_envs), gamma

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + reward
        self.return_rms.update(self.returns)
        scaled = np.clip(reward / np.sqrt(self.return_rms.var + 1e-8), -10.0, 10.0)
        self.returns[done] = 0.0
        return scaled


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain `std` and constant biases."""
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def categorical_log_prob(logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log π(a|s) = logits_a − log Σ_b exp(logits_b)."""
    return torch.log_softmax(logits, dim=-1).gather(-1, action.long()[..., None]).squeeze(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H = −Σ_a π(a|s) log π(a|s)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(-1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; μ, σ²) summed over action dimensions: Σ −(x − μ)² / (2σ²) − log σ − ½ log 2π."""
    return (-((x - mean) ** 2) / (2 * torch.exp(2 * log_std)) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian: Σ ½ log(2πe σ²), independent of the mean."""
    return (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)


def categorical_kl(old_logits: torch.Tensor, new_logits: torch.Tensor) -> torch.Tensor:
    """KL(π_old‖π) = Σ_a π_old(a|s) (log π_old(a|s) − log π(a|s))."""
    old_log_probs, new_log_probs = torch.log_softmax(old_logits, dim=-1), torch.log_softmax(new_logits, dim=-1)
    return (old_log_probs.exp() * (old_log_probs - new_log_probs)).sum(-1)


def gaussian_kl(old_mean, old_log_std, new_mean, new_log_std) -> torch.Tensor:
    """KL(N(μ₀, σ₀²)‖N(μ, σ²)) summed over action dimensions: Σ log(σ/σ₀) + (σ₀² + (μ₀ − μ)²) / (2σ²) − ½."""
    old_var, new_var = torch.exp(2 * old_log_std), torch.exp(2 * new_log_std)
    return (new_log_std - old_log_std + (old_var + (old_mean - new_mean) ** 2) / (2 * new_var) - 0.5).sum(-1)


class Agent(nn.Module):
    """A categorical policy (Discrete actions) or a diagonal Gaussian one (Box actions), and a separate critic."""

    def __init__(self, obs_dim: int, act_space: gym.Space):
        super().__init__()
        self.continuous = isinstance(act_space, gym.spaces.Box)
        n_outputs = int(np.prod(act_space.shape)) if self.continuous else int(act_space.n)
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, n_outputs), std=0.01),
        )
        if self.continuous:
            self.actor_logstd = nn.Parameter(torch.zeros(1, n_outputs))

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        """Sample a ~ π(·|s) unless `action` is given; return a, log π(a|s), the entropy of π(·|s) and V(s)."""
        out = self.actor(x)  # the logits, or the Gaussian's mean
        if self.continuous:
            log_std = self.actor_logstd.expand_as(out)
            if action is None:
                action = out + torch.exp(log_std) * torch.randn_like(out)
            return action, gaussian_log_prob(action, out, log_std), gaussian_entropy(log_std), self.get_value(x)
        if action is None:
            action = torch.multinomial(torch.softmax(out, dim=-1), 1).squeeze(-1)
        return action, categorical_log_prob(out, action), categorical_entropy(out), self.get_value(x)

    def policy_params(self, x: torch.Tensor) -> tuple:
        """What π(·|s) is made of: the logits (Discrete), or the mean and the log standard deviation (Box)."""
        out = self.actor(x)
        return (out, self.actor_logstd.expand_as(out)) if self.continuous else (out,)

    def kl(self, x: torch.Tensor, old_params: tuple) -> torch.Tensor:
        """The mean over the states x of KL(π_old(·|s)‖π(·|s)), π_old given by its `policy_params`."""
        new_params = self.policy_params(x)
        kl = gaussian_kl(*old_params, *new_params) if self.continuous else categorical_kl(*old_params, *new_params)
        return kl.mean()

    def act_deterministic(self, x: torch.Tensor) -> torch.Tensor:
        """The mean action (Box) or the most likely one (Discrete)."""
        out = self.actor(x)
        return out if self.continuous else out.argmax(dim=-1)


def env_action(action: torch.Tensor, act_space: gym.Space) -> np.ndarray:
    """What the env is sent: an integer per env (Discrete), or the action clipped to the bounds (Box)."""
    if isinstance(act_space, gym.spaces.Box):
        return np.clip(action.cpu().numpy(), act_space.low, act_space.high)
    return action.cpu().numpy().astype(np.int64)


class Rollout:
    """The storage of one rollout, allocated once: a row per step, a column per env."""

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int, action_shape: tuple, action_dtype, device):
        shape = (num_steps, num_envs)
        self.obs = torch.zeros(shape + (obs_dim,), device=device)
        self.actions = torch.zeros(shape + action_shape, dtype=action_dtype, device=device)
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


def collect_rollout(
    envs, agent, rollout: Rollout, next_obs: torch.Tensor, run, global_step: int, obs_rms, scale_reward
):
    """Fill `rollout` with num_steps steps of every env, a ~ π(·|s), and log the episodes that end; observations pass
    through `obs_rms` (updated with them) and rewards through `scale_reward`, where given. Returns the observation to go
    on from and the step count."""
    device = run.device
    for step in range(len(rollout.obs)):
        global_step += envs.num_envs
        rollout.obs[step] = next_obs
        with torch.inference_mode():
            action, logprob, _, value = agent.get_action_and_value(next_obs)
        rollout.actions[step], rollout.logprobs[step], rollout.values[step] = action, logprob, value

        next_obs_np, reward, terminated, truncated, infos = envs.step(env_action(action, envs.single_action_space))
        log_episodes(run, global_step, infos)
        if obs_rms is not None:
            obs_rms.update(next_obs_np)
        if scale_reward is not None:
            reward = scale_reward(reward, terminated | truncated)
        rollout.rewards[step] = torch.as_tensor(reward, dtype=torch.float32, device=device)
        rollout.terminations[step] = torch.as_tensor(terminated, device=device)
        rollout.dones[step] = torch.as_tensor(terminated | truncated, device=device)
        rollout.final_values[step] = 0.0
        if truncated.any():
            # truncation is not termination: keep V(s_final) to bootstrap from
            final_obs = true_next_obs(next_obs_np, infos)[truncated]
            if obs_rms is not None:
                final_obs = obs_rms.normalize(final_obs)
            with torch.inference_mode():
                final_value = agent.get_value(torch.as_tensor(final_obs, dtype=torch.float32, device=device))
            rollout.final_values[step, torch.as_tensor(truncated, device=device)] = final_value
        if obs_rms is not None:
            next_obs_np = obs_rms.normalize(next_obs_np)
        next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
    return next_obs, global_step


def compute_gae(rewards, values, next_values, terminations, dones, gamma: float, gae_lambda: float):
    """GAE(γ, λ) over a rollout of shape (num_steps, num_envs); with λ = 1 the advantages of n-step returns.

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


def surrogate_objective(agent, obs, actions, old_logprobs, advantages) -> torch.Tensor:
    """L(θ) = E[π_θ(a|s) / π_old(a|s) Â], the importance-sampled advantage of the policy being optimized."""
    _, newlogprob, _, _ = agent.get_action_and_value(obs, actions)
    return (torch.exp(newlogprob - old_logprobs) * advantages).mean()


def conjugate_gradient(matrix_vector_product, b: torch.Tensor, iters: int, residual_tol: float = 1e-10) -> torch.Tensor:
    """Solve A x = b for a symmetric positive-definite A known only through x ↦ A x (Hestenes & Stiefel 1952)."""
    x = torch.zeros_like(b)
    r = b.clone()  # the residual b − A x
    p = b.clone()  # the search direction, A-conjugate to the earlier ones
    r_dot_r = r @ r
    for _ in range(iters):
        ap = matrix_vector_product(p)
        alpha = r_dot_r / (p @ ap)  # α = rᵀr / pᵀAp
        x += alpha * p
        r -= alpha * ap
        new_r_dot_r = r @ r
        if new_r_dot_r < residual_tol:
            break
        p = r + (new_r_dot_r / r_dot_r) * p  # β = r'ᵀr' / rᵀr
        r_dot_r = new_r_dot_r
    return x


def fisher_vector_product(kl_fn, params: list, vector: torch.Tensor, damping: float) -> torch.Tensor:
    """(F + damping·I) v, with F the Hessian of the mean KL(π_old‖π_θ) at θ = θ_old, which is the Fisher information
    matrix there: F v = ∇_θ ((∇_θ KL) · v), two backward passes instead of the matrix."""
    kl_grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl_fn(), params, create_graph=True)])
    fvp = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl_grad @ vector, params)])
    return fvp + damping * vector


def set_params(params: list, flat: torch.Tensor) -> None:
    """Copy a flat vector into the parameters in place. (nn.utils.vector_to_parameters makes each parameter a view into
    the vector, at offsets that change which CPU kernels run: the same weights, saved and loaded, acted differently in
    the last bits.)"""
    offset = 0
    for param in params:
        param.copy_(flat[offset : offset + param.numel()].view_as(param))
        offset += param.numel()


def line_search(params: list, full_step: torch.Tensor, surrogate_fn, kl_fn, max_kl: float, coeff: float, iters: int):
    """Try θ_old + c^i · full_step for i = 0, 1, …, iters − 1 and keep the first step that improves the surrogate and
    keeps the mean KL within max_kl; when none does, restore θ_old. Returns the accepted fraction c^i (0.0: none)."""
    old_flat = nn.utils.parameters_to_vector(params).detach().clone()
    with torch.no_grad():
        old_surrogate = surrogate_fn()
        for i in range(iters):
            fraction = coeff**i
            set_params(params, old_flat + fraction * full_step)
            if kl_fn() <= max_kl and surrogate_fn() > old_surrogate:
                return fraction
        set_params(params, old_flat)
    return 0.0


def trpo_update(agent, policy_params: list, batch: dict, max_kl: float, args: Args, run, global_step: int) -> dict:
    """The natural-gradient step within the trust region, on the surrogate L of the batch (its advantages normalized
    with `norm_adv`): along the conjugate-gradient solution of F s = g, scaled to the trust region's edge, then the line
    search. Returns the policy loss −L after the step, L's improvement, the KL reached and the step fraction taken."""
    advantages = batch["advantages"]
    if args.norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    with torch.no_grad():
        old_policy = agent.policy_params(batch["obs"])
    surrogate = functools.partial(
        surrogate_objective, agent, batch["obs"], batch["actions"], batch["logprobs"], advantages
    )
    mean_kl = functools.partial(agent.kl, batch["obs"], old_policy)
    fisher_product = functools.partial(fisher_vector_product, mean_kl, policy_params, damping=args.cg_damping)
    surrogate_before = surrogate()
    check_finite(run, global_step, policy_loss=-surrogate_before)
    policy_grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate_before, policy_params)])
    step_direction = conjugate_gradient(fisher_product, policy_grad, args.cg_iters)  # s ≈ (F + damping·I)⁻¹ g
    s_f_s = step_direction @ fisher_product(step_direction)
    full_step = torch.sqrt(2 * max_kl / (s_f_s + 1e-12)) * step_direction  # β s, β = √(2δ / sᵀFs)
    step_fraction = line_search(
        policy_params, full_step, surrogate, mean_kl, max_kl, args.backtrack_coeff, args.backtrack_iters
    )
    with torch.no_grad():
        kl_after, surrogate_after = mean_kl(), surrogate()
    return {
        "policy_loss": -surrogate_after,
        "surrogate_improvement": surrogate_after - surrogate_before.detach(),
        "kl": kl_after,
        "line_search_fraction": step_fraction,
    }


def value_update(agent, optimizer, batch: dict, args: Args, run, global_step: int) -> torch.Tensor:
    """`vf_epochs` epochs over the batch in `vf_minibatches` random minibatches, an Adam step on ½ (V(s) − R)² each, R
    the GAE returns. Returns the last minibatch's loss."""
    batch_size = len(batch["obs"])
    minibatch_size = batch_size // args.vf_minibatches
    for _epoch in range(args.vf_epochs):
        b_inds = torch.randperm(batch_size, device=run.device)
        for start in range(0, batch_size, minibatch_size):
            mb_inds = b_inds[start : start + minibatch_size]
            v_loss = 0.5 * ((agent.get_value(batch["obs"][mb_inds]) - batch["returns"][mb_inds]) ** 2).mean()
            check_finite(run, global_step, value_loss=v_loss)
            optimizer.zero_grad(set_to_none=True)
            v_loss.backward()
            optimizer.step()
    return v_loss.detach()


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[R − V] / Var[R]: how much of the return the value function predicts (NaN when the returns are equal)."""
    var_returns = returns.var()
    return float("nan") if var_returns == 0 else (1 - (returns - values).var() / var_returns).item()


def evaluate(agent, obs_rms, env_id: str, episodes: int, seed: int, device, video_dir: str | None = None) -> list:
    """Returns of `episodes` episodes with the deterministic action, on a fresh env; `obs_rms` (frozen) normalizes, if
    given."""
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
            x = obs_rms.normalize(obs) if obs_rms is not None else obs
            with torch.inference_mode():
                action = agent.act_deterministic(torch.as_tensor(x, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(env_action(action, env.action_space)[0])
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    env.close()
    return returns


# Training
def check_args(args: Args) -> dict | None:
    """Reject bad input before anything is written; return the checkpoint to evaluate, if one is given."""
    checkpoint = check_common_args(args)
    check_positive(args, "num_envs", "num_steps", "cg_iters", "backtrack_iters", "vf_epochs", "vf_minibatches")
    check_positive(args, "max_kl", "vf_learning_rate")
    check_unit_interval(args, "gamma", "gae_lambda")
    batch_size = args.num_envs * args.num_steps
    if checkpoint is None and args.total_timesteps < batch_size:
        fail(f"--total-timesteps {args.total_timesteps} is less than one rollout (num_envs × num_steps = {batch_size})")
    if batch_size % args.vf_minibatches:
        fail(f"num_envs × num_steps = {batch_size} is not divisible by --vf-minibatches {args.vf_minibatches}")
    if not 0 < args.backtrack_coeff < 1:
        fail(f"--backtrack-coeff must be in (0, 1), got {args.backtrack_coeff}")
    obs_space, act_space = env_spaces(args.env_id)
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        fail(f"needs a Discrete or Box action space, but {args.env_id} has {act_space}")
    if not isinstance(obs_space, gym.spaces.Box):
        fail(f"needs Box observations, but {args.env_id} has {obs_space}; tabular methods fit Discrete ones")
    return checkpoint


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    # same-step autoreset, so that no transition crosses a reset (see `true_next_obs`)
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, i, args.capture_video, run.video_dir) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_space = envs.single_action_space

    agent = Agent(obs_dim, act_space).to(run.device)
    obs_rms = RunningMeanStd((obs_dim,)) if args.norm_obs else None
    scale_reward = RewardScaler(args.num_envs, args.gamma) if args.norm_reward else None
    if checkpoint:
        load_weights(run, agent, checkpoint["agent"])
        obs_rms = None
        if "obs_mean" in checkpoint:
            obs_rms = RunningMeanStd((obs_dim,))
            obs_rms.mean, obs_rms.var = checkpoint["obs_mean"].numpy(), checkpoint["obs_var"].numpy()
    policy_params = [p for name, p in agent.named_parameters() if not name.startswith("critic.")]
    critic_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=args.vf_learning_rate, eps=1e-5, fused=True)
    rollout = Rollout(args.num_steps, args.num_envs, obs_dim, act_space.shape, torch.float32, run.device)

    global_step = 0
    num_iterations = 0 if checkpoint else args.total_timesteps // (args.num_envs * args.num_steps)
    next_obs_np, _ = envs.reset(seed=args.seed)
    if obs_rms is not None:
        next_obs_np = obs_rms.normalize(next_obs_np)
    next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=run.device)
    # what a snapshot keeps, besides the loop's values, the RNGs of python, numpy and torch, and the episode statistics
    state = dict(agent=agent, critic_optimizer=critic_optimizer, obs_rms=obs_rms, scale_reward=scale_reward, envs=envs)
    global_step, next_obs = resume(run, state, global_step=global_step, next_obs=next_obs)
    for iteration in range(global_step // (args.num_envs * args.num_steps), num_iterations):
        max_kl = (1.0 - iteration / num_iterations) * args.max_kl if args.anneal_kl else args.max_kl
        # collect: num_steps steps of every env with the current policy
        next_obs, global_step = collect_rollout(envs, agent, rollout, next_obs, run, global_step, obs_rms, scale_reward)
        # estimate: advantages by GAE(γ, λ), and the value targets
        advantages, returns = estimate_advantages(agent, rollout, next_obs, args.gamma, args.gae_lambda)
        batch = rollout.batch(advantages, returns)
        # update: the policy's step within the trust region, then the value function's regression on the returns
        losses = trpo_update(agent, policy_params, batch, max_kl, args, run, global_step)
        losses["value_loss"] = value_update(agent, critic_optimizer, batch, args, run, global_step)

        losses["explained_variance"] = explained_variance(batch["values"], batch["returns"])
        for name, value in losses.items():
            run.writer.add_scalar(f"losses/{name}", float(value), global_step)
        log_progress(run, global_step)
        if evaluation_due(run):  # with --eval-frequency: the greedy policy as it trains
            log_evaluation(
                run, evaluate(agent, obs_rms, args.env_id, args.eval_episodes, args.seed + 20_000, run.device)
            )
        snapshot(run, state, global_step=global_step, next_obs=next_obs)

    envs.close()
    eval_returns = evaluate(
        agent, obs_rms, args.env_id, args.eval_episodes, args.seed + 10_000, run.device, run.eval_video_dir
    )
    model = {"agent": agent.state_dict()}
    if obs_rms is not None:  # the observation statistics travel with the weights: without them the policy is lost
        model.update(obs_mean=torch.from_numpy(obs_rms.mean), obs_var=torch.from_numpy(obs_rms.var))
    return finish_run(run, global_step, eval_returns, model=model)


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
