"""QR-DQN: distributional DQN by quantile regression.

Dabney, Rowland, Bellemare & Munos (2018), "Distributional Reinforcement Learning with Quantile Regression", AAAI.
The network predicts for every action `n_quantiles` returns θ_1 … θ_N, estimates of the quantiles of the return
distribution at the midpoints τ̂_i = (2i − 1) / 2N; Q(s, a) = mean_i θ_i(s, a) drives the ε-greedy policy. The target
quantiles are r + γ θ_j(s', a*) of the target network at a* = argmax_a' Q_target(s', a'), and the loss is the
quantile Huber loss: every predicted θ_i is pulled toward every target quantile with weight |τ̂_i − 1{u < 0}|, which
makes θ_i converge to the τ̂_i-quantile, and the Huber loss of threshold κ in place of |u|. Unlike C51 no support needs
to be chosen. Everything else is dqn.py: replay buffer, target network, ε-greedy schedule, training rounds, and the
defaults tuned on CartPole-v1, with a lower learning rate (5e-4; with dqn.py's 2.3e-3 two seeds of five ended
below 500, one of them at 91). A time-limit truncation is not a termination: a truncated transition still
bootstraps from the observation the episode was cut off in.

Spaces: Box observations, Discrete actions (for Box actions use ppo_continuous.py).
Run: python algos/qr_dqn.py --env-id CartPole-v1
"""

# Imports
import collections
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
    learning_rate: float = 5e-4
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
    """ε at the start of training"""
    end_e: float = 0.04
    """ε at the end of the exploration phase"""
    exploration_fraction: float = 0.16
    """fraction of `total_timesteps` over which ε falls from `start_e` to `end_e`"""
    learning_starts: int = 1_000
    """env steps of ε-greedy play before the first gradient step"""
    train_frequency: int = 256
    """env steps between training rounds"""
    gradient_steps: int = 128
    """gradient steps in each training round"""
    n_quantiles: int = 25
    """the number N of quantiles estimated per action"""
    kappa: float = 1.0
    """κ, the threshold of the quantile Huber loss"""


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
    if args.n_quantiles <= 0 or args.kappa <= 0:
        fail(f"--n-quantiles and --kappa must be positive, got {args.n_quantiles} and {args.kappa}")
    if args.target_network_frequency <= 0:
        fail(f"--target-network-frequency must be positive, got {args.target_network_frequency}")
    try:
        env = gym.make(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(f"qr_dqn.py needs a Discrete action space, but {args.env_id} has {act_space}; use ppo_continuous.py")
    if not isinstance(obs_space, gym.spaces.Box):
        fail(f"qr_dqn.py needs Box observations, but {args.env_id} has {obs_space}; tabular methods fit Discrete ones")


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


class QNetwork(nn.Module):
    """For every action N quantile estimates: `quantiles(x)` is (batch, actions, N); `forward(x)` is their mean
    Q(s, a), (batch, actions)."""

    def __init__(self, obs_dim: int, n_actions: int, n_quantiles: int):
        super().__init__()
        self.n_actions, self.n_quantiles = n_actions, n_quantiles
        self.fc1 = nn.Linear(obs_dim, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_actions * n_quantiles)

    def quantiles(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x))))).view(-1, self.n_actions, self.n_quantiles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantiles(x).mean(dim=-1)


class ReplayBuffer:
    """A FIFO of transitions in preallocated arrays, sampled uniformly; at capacity the oldest rows are overwritten.
    Rows live in numpy (a write costs well under a microsecond); only a sampled minibatch becomes tensors."""

    def __init__(self, capacity: int, obs_dim: int, device: torch.device, seed: int):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminations = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.size, self.device = capacity, 0, 0, device
        self.rng = np.random.default_rng(seed)

    def add(self, obs, next_obs, actions, rewards, terminations) -> None:
        """Store one transition per env; the arguments are arrays with the env axis first."""
        n = len(obs)
        # rows pos … pos + n − 1, wrapping around at capacity (a slice, the cheap case, when they do not wrap)
        idx = (
            slice(self.pos, self.pos + n)
            if self.pos + n <= self.capacity
            else np.arange(self.pos, self.pos + n) % self.capacity
        )
        self.obs[idx], self.next_obs[idx], self.actions[idx] = obs, next_obs, actions
        self.rewards[idx], self.terminations[idx] = rewards, terminations
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int):
        """(obs, actions, rewards, next_obs, terminations) of `batch_size` rows drawn uniformly with replacement."""
        idx = self.rng.integers(self.size, size=batch_size)
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.terminations)
        return tuple(torch.from_numpy(a[idx]).to(self.device) for a in arrays)


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    """ε falls linearly from start_e to end_e over `duration` steps, then stays at end_e."""
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


def td_target(rewards, next_quantiles, terminations, gamma: float):
    """Target quantiles T θ_j = r + γ (1 − terminated) θ_j(s', a*), (batch, N). A truncated transition is not
    terminal and bootstraps."""
    return rewards[:, None] + gamma * (1.0 - terminations[:, None]) * next_quantiles


def quantile_huber_loss(quantiles, target_quantiles, kappa: float) -> torch.Tensor:
    """Σ_i mean_j ρ^κ_τ̂i(T θ_j − θ_i), averaged over the batch, with ρ^κ_τ(u) = |τ − 1{u < 0}| L_κ(u) / κ and
    L_κ the Huber loss (u²/2 for |u| ≤ κ, else κ(|u| − κ/2)). quantiles (batch, N) at τ̂_i = (2i − 1) / 2N;
    target_quantiles (batch, N′)."""
    n = quantiles.shape[1]
    tau_hat = (torch.arange(n, device=quantiles.device, dtype=quantiles.dtype) + 0.5) / n
    u = target_quantiles[:, None, :] - quantiles[:, :, None]  # (batch, i, j): pairwise TD errors
    huber = torch.where(u.abs() <= kappa, 0.5 * u**2, kappa * (u.abs() - 0.5 * kappa))
    rho = (tau_hat[None, :, None] - (u < 0).to(u.dtype)).abs() * huber / kappa
    return rho.mean(dim=2).sum(dim=1).mean()


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

    q_network = QNetwork(obs_dim, n_actions, args.n_quantiles).to(device)
    if args.checkpoint:
        q_network.load_state_dict(torch.load(args.checkpoint, map_location=device)["q_network"])
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    target_network = QNetwork(obs_dim, n_actions, args.n_quantiles).to(device)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(args.buffer_size, obs_dim, device, args.seed)

    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, dtype=np.int64)
    recent_returns = collections.deque(maxlen=10)
    global_step, updates = 0, 0
    num_iterations = 0 if args.checkpoint else args.total_timesteps // args.num_envs
    start_time = last_print = time.time()
    obs, _ = envs.reset(seed=args.seed)
    for _ in range(num_iterations):
        global_step += args.num_envs
        # ALGO LOGIC: ε-greedy action, each env exploring independently
        epsilon = linear_schedule(
            args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
        )
        explore = rng.random(args.num_envs) < epsilon
        if explore.all():
            actions = rng.integers(n_actions, size=args.num_envs)
        else:
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

        # store (s, a, r, s', terminated) with s' the observation the step really led to
        rb.add(obs, true_next_obs(next_obs, infos), actions, rewards, terminations)
        obs = next_obs

        # ALGO LOGIC: training
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (
                1.0 - (global_step - args.num_envs) / args.total_timesteps
            ) * args.learning_rate
        if global_step > args.learning_starts:
            for _ in range(steps_crossed(global_step, args.num_envs, args.train_frequency) * args.gradient_steps):
                b_obs, b_actions, b_rewards, b_next_obs, b_terminations = rb.sample(args.batch_size)
                with torch.no_grad():
                    next_quantiles = target_network.quantiles(b_next_obs)  # (batch, actions, N)
                    next_actions = next_quantiles.mean(dim=-1).argmax(dim=1)  # argmax_a' Q_target(s', a')
                    next_quantiles = next_quantiles[torch.arange(len(next_actions), device=device), next_actions]
                    # ALGO LOGIC: T θ_j = r + γ (1 − d) θ_j(s', a*)
                    target = td_target(b_rewards, next_quantiles, b_terminations, args.gamma)
                quantiles = q_network.quantiles(b_obs)[torch.arange(len(b_actions), device=device), b_actions]
                loss = quantile_huber_loss(quantiles, target, args.kappa)
                if not torch.isfinite(loss):
                    writer.close()
                    envs.close()
                    fail(f"quantile_loss became {loss.item()} at global step {global_step}; stopping", status=1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                updates += 1
                if updates % 100 == 0:
                    writer.add_scalar("losses/quantile_loss", loss.item(), global_step)
                    writer.add_scalar("losses/q_values", quantiles.mean().item(), global_step)

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
            print(f"step={global_step} sps={sps} epsilon={epsilon:.3f} recent_return={recent:.1f}", flush=True)

    wall_time = time.time() - start_time
    envs.close()
    if args.save_model:
        torch.save({"q_network": q_network.state_dict()}, os.path.join(run_dir, f"{args.exp_name}.pt"))

    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns = evaluate(q_network, args.env_id, args.eval_episodes, args.seed + 10_000, device, eval_video_dir)
    for i, episode_return in enumerate(eval_returns):
        writer.add_scalar("eval/episodic_return", episode_return, i)
    writer.close()

    summary = {
        "algo": "qr_dqn",
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
