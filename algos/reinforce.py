"""REINFORCE: Monte Carlo policy gradient, for Discrete and Box actions.

Williams (1992), "Simple statistical gradient-following algorithms for connectionist reinforcement learning", Machine
Learning 8. The policy-gradient theorem (Sutton et al. 2000) gives ∇J(θ) = E_π[Σ_t ∇ log π(a_t|s_t) G_t], and
REINFORCE estimates it from whole episodes played with the current policy. Two changes leave this estimate unbiased
and cut its variance:
- reward-to-go: G_t = Σ_{k≥t} γ^(k−t) r_k, the return from step t on instead of the whole episode's, since an action
  cannot change the rewards that came before it (their terms have expectation 0);
- a baseline: G_t − b(s_t) in place of G_t, since E_a[∇ log π(a|s) b(s)] = b(s) ∇ Σ_a π(a|s) = b(s) ∇ 1 = 0 for any
  b that does not depend on the action; the learned state value V(s_t) (`--baseline`) is a good such b.
Each update uses one whole episode from each of `num_envs` envs (a batch of `num_envs` episodes); `--norm-returns`
standardizes the weights G_t (or G_t − V(s_t)) over the batch. The return of an episode cut by a time limit is taken as
it was played: Monte Carlo has no value to bootstrap from. Episodes still running when the budget ends are dropped.
The policy is categorical for Discrete actions and a diagonal Gaussian with state-independent log standard deviations
for Box actions (sampled actions are clipped to the bounds when sent to the env).

Spaces: Box observations; Discrete or Box actions.
Run: python algos/reinforce.py --env-id CartPole-v1
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
    total_timesteps: int = 250_000
    """env steps, all envs together"""
    num_envs: int = 8
    """the number of vectorized envs: each update uses one whole episode from each"""
    eval_episodes: int = 10
    """episodes of the final deterministic (most likely or mean action) evaluation"""
    learning_rate: float = 1e-3
    """the Adam learning rate"""
    gamma: float = 0.99
    """the discount factor γ"""
    baseline: bool = True
    """subtract a learned state value V(s_t) from the return (it is trained by regression on G_t)"""
    norm_returns: bool = True
    """standardize the policy gradient's weights G_t (or G_t − V(s_t)) over each batch"""


# Environment, networks and the algorithm's math
def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one clear line on stderr and exit status `status` (2: bad input)."""
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def check_args(args: Args) -> None:
    """Reject bad input before anything is written."""
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        fail(f"checkpoint file not found: {args.checkpoint}")
    for name in ("num_envs", "eval_episodes"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.checkpoint is None and args.total_timesteps <= 0:
        fail(f"--total-timesteps must be positive, got {args.total_timesteps}")
    try:
        env = gym.make(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        fail(f"reinforce.py needs a Discrete or Box action space, but {args.env_id} has {act_space}")
    if not isinstance(obs_space, gym.spaces.Box):
        fail(
            f"reinforce.py needs Box observations, but {args.env_id} has {obs_space}; tabular methods fit Discrete ones"
        )


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


class Agent(nn.Module):
    """A categorical policy (Discrete actions) or a diagonal Gaussian one (Box actions), and a separate state-value
    network, the baseline (unused with --no-baseline)."""

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

    def act_deterministic(self, x: torch.Tensor) -> torch.Tensor:
        """The mean action (Box) or the most likely one (Discrete)."""
        out = self.actor(x)
        return out if self.continuous else out.argmax(dim=-1)


def env_action(action: torch.Tensor, act_space: gym.Space) -> np.ndarray:
    """What the env is sent: an integer per env (Discrete), or the action clipped to the bounds (Box)."""
    if isinstance(act_space, gym.spaces.Box):
        return np.clip(action.cpu().numpy(), act_space.low, act_space.high)
    return action.cpu().numpy().astype(np.int64)


def reward_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + γ G_{t+1} over a batch of shape (num_steps, num_envs) whose rewards are 0 after each env's episode
    ended, so that G_t = Σ_{k≥t} γ^(k−t) r_k sums the rewards of the step's own episode only."""
    returns = torch.zeros_like(rewards)
    next_return = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        next_return = rewards[t] + gamma * next_return
        returns[t] = next_return
    return returns


def evaluate(agent, env_id: str, episodes: int, seed: int, device, video_dir: str | None = None) -> list:
    """Returns of `episodes` episodes with the deterministic action, on a fresh env."""
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
                action = agent.act_deterministic(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            obs, reward, terminated, truncated, _ = env.step(env_action(action, env.action_space)[0])
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
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env setup: every update starts all envs on a new episode and steps them until each has finished one
    video_dir = os.path.join(run_dir, "videos")
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, i, args.capture_video, video_dir) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_space = envs.single_action_space

    agent = Agent(obs_dim, act_space).to(device)
    if args.checkpoint:
        agent.load_state_dict(torch.load(args.checkpoint, map_location=device))
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)

    recent_returns = collections.deque(maxlen=10)
    global_step, iteration = 0, 0
    start_time = last_print = time.time()
    while not args.checkpoint and global_step < args.total_timesteps:
        iteration += 1
        # play one episode in every env; an env whose episode has ended steps on, but its steps are not kept
        next_obs_np, _ = envs.reset(seed=args.seed if iteration == 1 else None)
        running = np.ones(args.num_envs, dtype=bool)
        finished = np.zeros(args.num_envs, dtype=bool)
        episode_returns = np.zeros(args.num_envs)
        obs, actions, rewards, masks = [], [], [], []
        while running.any() and global_step < args.total_timesteps:
            excess = global_step + int(running.sum()) - args.total_timesteps
            if excess > 0:  # the budget ends within this step: cut the last running episodes, so that it ends exactly
                running[np.flatnonzero(running)[-excess:]] = False
            next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
            with torch.inference_mode():
                action, _, _, _ = agent.get_action_and_value(next_obs)
            next_obs_np, reward, terminated, truncated, _ = envs.step(env_action(action, act_space))
            obs.append(next_obs)
            actions.append(action)
            reward = np.where(running, reward, 0.0)  # an ended episode earns nothing more
            rewards.append(torch.as_tensor(reward, dtype=torch.float32, device=device))
            masks.append(torch.tensor(running, device=device))  # a copy: `running` changes in place below
            global_step += int(running.sum())
            episode_returns += reward

            # log every finished episode
            ended = running & (terminated | truncated)
            for i in np.flatnonzero(ended):
                writer.add_scalar("charts/episodic_return", episode_returns[i], global_step)
                writer.add_scalar("charts/episodic_length", len(masks), global_step)
                recent_returns.append(float(episode_returns[i]))
            finished |= ended
            running &= ~ended
        if not finished.any():
            break  # the budget ended before any episode of this batch did

        # ALGO LOGIC: reward-to-go returns of the whole episodes; the steps of episodes the budget cut are dropped
        returns = reward_to_go(torch.stack(rewards), args.gamma)
        keep = torch.stack(masks) & torch.as_tensor(finished, device=device)
        b_obs, b_actions, b_returns = torch.stack(obs)[keep], torch.stack(actions)[keep], returns[keep]

        _, logprob, _, value = agent.get_action_and_value(b_obs, b_actions)
        weights = b_returns - value.detach() if args.baseline else b_returns  # G_t − V(s_t), or G_t
        if args.norm_returns:
            weights = (weights - weights.mean()) / (weights.std() + 1e-8)
        pg_loss = -(weights * logprob).mean()  # −E[Ψ_t log π(a_t|s_t)]: its gradient is the policy gradient's negative
        v_loss = 0.5 * ((value - b_returns) ** 2).mean()  # the baseline regresses V(s_t) on G_t
        loss = pg_loss + v_loss if args.baseline else pg_loss
        if not torch.isfinite(loss):
            writer.close()
            envs.close()
            fail(
                f"loss became non-finite at global step {global_step}: policy_loss={pg_loss.item()}, "
                f"value_loss={v_loss.item()}; stopping",
                status=1,
            )

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        sps = int(global_step / (time.time() - start_time))
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        if args.baseline:
            writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("charts/SPS", sps, global_step)
        if time.time() - last_print >= 2.0 or global_step >= args.total_timesteps:
            last_print = time.time()
            recent = np.mean(recent_returns) if recent_returns else float("nan")
            print(f"step={global_step} sps={sps} recent_return={recent:.1f}", flush=True)

    wall_time = time.time() - start_time
    envs.close()
    if args.save_model:
        torch.save(agent.state_dict(), os.path.join(run_dir, f"{args.exp_name}.pt"))

    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns = evaluate(agent, args.env_id, args.eval_episodes, args.seed + 10_000, device, eval_video_dir)
    for i, episode_return in enumerate(eval_returns):
        writer.add_scalar("eval/episodic_return", episode_return, i)
    writer.close()

    summary = {
        "algo": "reinforce",
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
