"""TD3: twin delayed deep deterministic policy gradient.

Fujimoto, van Hoof & Meger (2018), "Addressing Function Approximation Error in Actor-Critic Methods", ICML.
DDPG with three remedies for overestimation: two critics whose smaller estimate forms the target (clipped double
Q-learning); target policy smoothing, a clipped Gaussian perturbation of the target action; and delayed updates, the
actor and the target networks moving once every `policy_frequency` critic updates. Exploration adds Gaussian noise to
the deterministic action; the first `learning_starts` steps act uniformly at random. A time-limit truncation is not a
termination: the critic target bootstraps from the observation the episode was cut off in. Both critics are one
module evaluated in one batched forward and trained by one optimizer step; the actor's loss evaluates Q_1 alone.

Spaces: Box observations, Box actions with finite bounds (the actor's tanh output is rescaled to them); for Discrete
actions use dqn.py or ppo.py.
Run: python algos/td3.py --env-id Pendulum-v1
The defaults are tuned for Pendulum-v1 (as in the RL Baselines3 Zoo). For MuJoCo use the paper's settings:
python algos/td3.py --env-id HalfCheetah-v5 --total-timesteps 1000000 --learning-rate 3e-4 --gamma 0.99
--buffer-size 1000000 --learning-starts 25000
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
    """record videos of the first env and of the evaluation episodes into the run folder"""
    save_model: bool = False
    """write the trained weights to `{run folder}/{exp_name}.pt`"""
    checkpoint: str | None = None
    """path of a saved model: load it and only evaluate"""
    log_dir: str = "runs"
    """parent folder of the run folder"""

    # Algorithm specific arguments
    env_id: str = "Pendulum-v1"
    """the gymnasium id of the env (defaults tuned on Pendulum-v1)"""
    total_timesteps: int = 20_000
    """env steps, all envs together"""
    num_envs: int = 1
    """the number of vectorized envs (one gradient step per env step)"""
    eval_episodes: int = 10
    """episodes of the final deterministic evaluation"""
    learning_rate: float = 1e-3
    """the Adam learning rate of the actor and the critics"""
    buffer_size: int = 200_000
    """the replay buffer capacity"""
    gamma: float = 0.98
    """the discount factor γ"""
    tau: float = 0.005
    """the Polyak averaging rate of the target networks"""
    batch_size: int = 256
    """the minibatch size sampled from the replay buffer"""
    policy_noise: float = 0.2
    """the standard deviation of the target policy smoothing noise, in units of half the action range"""
    noise_clip: float = 0.5
    """the target policy smoothing noise is clipped to ±noise_clip (same units)"""
    exploration_noise: float = 0.1
    """the standard deviation of the exploration noise, in units of half the action range"""
    learning_starts: int = 10_000
    """env steps of uniformly random actions before the first gradient step"""
    policy_frequency: int = 2
    """critic updates per actor and target update (the delay)"""


# Environment, networks, replay buffer and the algorithm's math
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
    for name in ("num_envs", "eval_episodes", "buffer_size", "batch_size", "policy_frequency"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    try:
        env = gym.make(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Box):
        fail(f"td3.py needs a Box action space, but {args.env_id} has {act_space}; use dqn.py or ppo.py")
    if not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all()):
        fail(f"td3.py needs finite action bounds, but {args.env_id} has {act_space}")
    if not isinstance(obs_space, gym.spaces.Box):
        fail(f"td3.py needs Box observations, but {args.env_id} has {obs_space}")


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


class EnsembleLinear(nn.Module):
    """`n` independent linear layers applied in one batched matrix product: (m, B, in) → (m, B, out), the first m ≤ n
    layers for an input of m slices. Initialized as nn.Linear is: weights and biases uniform in ±1/√in."""

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        bound = in_features**-0.5
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == len(self.weight):  # all layers: no slice (a slice's backward adds a copy of the weights' size)
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[: len(x)], x, self.weight[: len(x)])


class Critics(nn.Module):
    """`n` Q-networks Q_i(s, a), evaluated together: returns a tensor of shape (n, batch), or of shape (first, batch)
    with Q_1 … Q_first alone."""

    def __init__(self, obs_dim: int, act_dim: int, n: int = 2):
        super().__init__()
        self.n = n
        self.net = nn.Sequential(
            EnsembleLinear(n, obs_dim + act_dim, 256),
            nn.ReLU(),
            EnsembleLinear(n, 256, 256),
            nn.ReLU(),
            EnsembleLinear(n, 256, 1),
        )

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, first: int | None = None) -> torch.Tensor:
        x = torch.cat([obs, actions], dim=-1)
        return self.net(x.expand(self.n if first is None else first, *x.shape)).squeeze(-1)


class Actor(nn.Module):
    """The deterministic policy μ(s): a tanh output rescaled to the action bounds."""

    def __init__(self, obs_dim: int, act_dim: int, action_low: np.ndarray, action_high: np.ndarray):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, act_dim),
            nn.Tanh(),
        )
        low, high = torch.as_tensor(action_low, dtype=torch.float32), torch.as_tensor(action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_bias", (high + low) / 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs) * self.action_scale + self.action_bias


class ReplayBuffer:
    """A FIFO of transitions in preallocated tensors, sampled uniformly; at capacity the oldest rows are overwritten."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        self.obs = torch.zeros((capacity, obs_dim), device=device)
        self.next_obs = torch.zeros((capacity, obs_dim), device=device)
        self.actions = torch.zeros((capacity, act_dim), device=device)
        self.rewards = torch.zeros(capacity, device=device)
        self.terminations = torch.zeros(capacity, device=device)
        self.capacity, self.pos, self.size, self.device = capacity, 0, 0, device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def add(self, obs, next_obs, actions, rewards, terminations) -> None:
        """Store one transition per env; the arguments are arrays with the env axis first."""
        idx = torch.arange(self.pos, self.pos + len(obs), device=self.device) % self.capacity
        for storage, values in (
            (self.obs, obs),
            (self.next_obs, next_obs),
            (self.actions, actions),
            (self.rewards, rewards),
            (self.terminations, terminations),
        ):
            storage[idx] = torch.as_tensor(values, dtype=torch.float32, device=self.device)
        self.pos = (self.pos + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, batch_size: int):
        """(obs, actions, rewards, next_obs, terminations) of `batch_size` rows drawn uniformly with replacement."""
        idx = torch.randint(self.size, (batch_size,), device=self.device, generator=self.generator)
        return self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminations[idx]


def true_next_obs(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each env's step led to. With same-step autoreset, `next_obs` of an env whose episode just ended
    is already the first observation of its next episode; the observation the episode ended in is in `final_obs`."""
    if "_final_obs" not in infos:
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging θ' ← τ θ + (1 − τ) θ', all parameters in one fused call."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def smoothed_target_actions(target_actor: Actor, next_obs, policy_noise: float, noise_clip: float) -> torch.Tensor:
    """ã = clip(μ'(s') + clip(ε, −c, c), low, high) with ε ~ N(0, σ²), σ and c in units of half the action range."""
    scale, bias = target_actor.action_scale, target_actor.action_bias
    actions = target_actor(next_obs)
    noise = (torch.randn_like(actions) * policy_noise).clamp(-noise_clip, noise_clip) * scale
    return torch.max(torch.min(actions + noise, bias + scale), bias - scale)


def td_target(rewards, next_q_values, terminations, gamma: float):
    """y = r + γ (1 − terminated) min_i Q'_i(s', a'), the smallest of the target critics' estimates (next_q_values has
    shape (critics, batch); with one critic, plain Q'). A truncated transition is not terminal and bootstraps."""
    return rewards + gamma * (1.0 - terminations) * next_q_values.min(dim=0).values


def evaluate(actor, env_id: str, episodes: int, seed: int, device, video_dir: str | None = None) -> list:
    """Returns of `episodes` episodes of the deterministic policy μ(s) on a fresh env."""
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
                action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
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
    act_space = envs.single_action_space
    act_dim = int(np.prod(act_space.shape))

    actor = Actor(obs_dim, act_dim, act_space.low, act_space.high).to(device)
    if args.checkpoint:
        actor.load_state_dict(torch.load(args.checkpoint, map_location=device)["actor"])
    critics = Critics(obs_dim, act_dim, n=2).to(device)
    target_actor = Actor(obs_dim, act_dim, act_space.low, act_space.high).to(device)
    target_critics = Critics(obs_dim, act_dim, n=2).to(device)
    target_actor.load_state_dict(actor.state_dict())
    target_critics.load_state_dict(critics.state_dict())
    critic_optimizer = torch.optim.Adam(critics.parameters(), lr=args.learning_rate, fused=True)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device, args.seed)
    exploration_std = actor.action_scale.cpu().numpy() * args.exploration_noise

    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, dtype=np.int64)
    recent_returns = collections.deque(maxlen=10)
    global_step, updates = 0, 0
    num_iterations = 0 if args.checkpoint else args.total_timesteps // args.num_envs
    start_time = last_print = time.time()
    obs, _ = envs.reset(seed=args.seed)
    for _ in range(num_iterations):
        global_step += args.num_envs
        # ALGO LOGIC: uniformly random actions first, then μ(s) plus Gaussian exploration noise
        if global_step <= args.learning_starts:
            actions = rng.uniform(act_space.low, act_space.high, size=(args.num_envs, act_dim)).astype(np.float32)
        else:
            with torch.inference_mode():
                mu = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()
            actions = np.clip(mu + rng.normal(size=mu.shape) * exploration_std, act_space.low, act_space.high)

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

        # ALGO LOGIC: training, one gradient step per env step
        if global_step > args.learning_starts:
            for _ in range(args.num_envs):
                b_obs, b_actions, b_rewards, b_next_obs, b_terminations = rb.sample(args.batch_size)
                with torch.no_grad():
                    next_actions = smoothed_target_actions(target_actor, b_next_obs, args.policy_noise, args.noise_clip)
                    # clipped double Q-learning: y = r + γ (1 − d) min_i Q'_i(s', ã)
                    target = td_target(b_rewards, target_critics(b_next_obs, next_actions), b_terminations, args.gamma)
                q_values = critics(b_obs, b_actions)  # (2, batch)
                critic_loss = ((q_values - target) ** 2).mean(dim=1).sum()  # both critics' MSE, one optimizer step
                if not torch.isfinite(critic_loss):
                    writer.close()
                    envs.close()
                    fail(f"critic_loss became {critic_loss.item()} at global step {global_step}; stopping", status=1)
                critic_optimizer.zero_grad(set_to_none=True)
                critic_loss.backward()
                critic_optimizer.step()
                updates += 1

                # delayed policy update: ∇_φ J = E[∇_a Q_1(s, a)|_{a=μ(s)} ∇_φ μ(s)], then the targets follow
                if updates % args.policy_frequency == 0:
                    critics.requires_grad_(False)  # the gradient flows through the critic to the action, not into it
                    actor_loss = -critics(b_obs, actor(b_obs), first=1)[0].mean()  # Q_1 only, as in the paper
                    actor_optimizer.zero_grad(set_to_none=True)
                    actor_loss.backward()
                    actor_optimizer.step()
                    critics.requires_grad_(True)
                    soft_update(target_actor, actor, args.tau)
                    soft_update(target_critics, critics, args.tau)
                    if (updates // args.policy_frequency) % 100 == 0:
                        writer.add_scalar("losses/actor_loss", actor_loss.item(), global_step)

                if updates % 100 == 0:
                    writer.add_scalar("losses/critic_loss", critic_loss.item() / 2, global_step)
                    writer.add_scalar("losses/q_values", q_values.mean().item(), global_step)

        if time.time() - last_print >= 2.0:
            last_print = time.time()
            sps = int(global_step / (last_print - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)
            recent = np.mean(recent_returns) if recent_returns else float("nan")
            print(f"step={global_step} sps={sps} recent_return={recent:.1f}", flush=True)

    wall_time = time.time() - start_time
    envs.close()
    if args.save_model:
        torch.save({"actor": actor.state_dict()}, os.path.join(run_dir, f"{args.exp_name}.pt"))

    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns = evaluate(actor, args.env_id, args.eval_episodes, args.seed + 10_000, device, eval_video_dir)
    for i, episode_return in enumerate(eval_returns):
        writer.add_scalar("eval/episodic_return", episode_return, i)
    writer.close()

    summary = {
        "algo": "td3",
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
