"""PPO: proximal policy optimization with the clipped surrogate objective, for Discrete actions.

Schulman et al. (2017), "Proximal Policy Optimization Algorithms", arXiv:1707.06347; advantages by GAE from
Schulman et al. (2016), "High-Dimensional Continuous Control Using Generalized Advantage Estimation", ICLR.
Vectorized envs collect a rollout; advantages come from GAE(γ, λ) and are normalized per minibatch; the policy
maximizes min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â) with ρ = π(a|s) / π_old(a|s), plus an entropy bonus, over several epochs
of minibatches, with a clipped value loss, gradient-norm clipping and a linearly annealed learning rate. A time-limit
truncation is not a termination: GAE bootstraps from the value of the observation the episode was cut off in.

Spaces: Box observations, Discrete actions (for Box actions use ppo_continuous.py).
Run: python algos/ppo.py --env-id CartPole-v1
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
    total_timesteps: int = 100_000
    """env steps, all envs together"""
    num_envs: int = 8
    """the number of vectorized envs"""
    eval_episodes: int = 10
    """episodes of the final deterministic (argmax) evaluation"""
    learning_rate: float = 1e-3
    """the Adam learning rate (at the start, when annealed)"""
    num_steps: int = 32
    """steps per env in each rollout"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over training"""
    gamma: float = 0.98
    """the discount factor γ"""
    gae_lambda: float = 0.8
    """the λ of GAE"""
    num_minibatches: int = 1
    """minibatches per epoch"""
    update_epochs: int = 20
    """epochs of minibatch updates per rollout"""
    norm_adv: bool = True
    """normalize advantages per minibatch"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient ε"""
    clip_vloss: bool = True
    """clip the value loss as the policy loss is clipped"""
    ent_coef: float = 0.0
    """the entropy bonus coefficient"""
    vf_coef: float = 0.5
    """the value loss coefficient"""
    max_grad_norm: float = 0.5
    """the maximum global norm of the gradient"""
    target_kl: float | None = None
    """stop the epochs of an update early when the approximate KL exceeds this"""


# Environment, networks and the algorithm's math
def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one clear line on stderr and exit status `status` (2: bad input)."""
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def check_args(args: Args) -> None:
    """Reject bad input before anything is written."""
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        fail(f"checkpoint file not found: {args.checkpoint}")
    for name in ("num_envs", "num_steps", "num_minibatches", "update_epochs", "eval_episodes"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.checkpoint is None and args.total_timesteps <= 0:
        fail(f"--total-timesteps must be positive, got {args.total_timesteps}")
    batch_size = args.num_envs * args.num_steps
    if args.checkpoint is None and args.total_timesteps < batch_size:
        fail(f"--total-timesteps {args.total_timesteps} is less than one rollout (num_envs × num_steps = {batch_size})")
    if batch_size % args.num_minibatches:
        fail(f"num_envs × num_steps = {batch_size} is not divisible by --num-minibatches {args.num_minibatches}")
    try:
        env = gym.make(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(f"ppo.py needs a Discrete action space, but {args.env_id} has {act_space}; use ppo_continuous.py")
    if not isinstance(obs_space, gym.spaces.Box):
        fail(f"ppo.py needs Box observations, but {args.env_id} has {obs_space}; tabular methods fit Discrete ones")


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


class Agent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int):
        super().__init__()
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
            layer_init(nn.Linear(64, n_actions), std=0.01),
        )

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        """Sample a ~ π(·|s) unless `action` is given; return a, log π(a|s), the entropy of π(·|s) and V(s)."""
        logits = self.actor(x)
        log_probs = torch.log_softmax(logits, dim=-1)
        if action is None:
            action = torch.multinomial(log_probs.exp(), 1).squeeze(-1)
        log_prob = log_probs.gather(-1, action[..., None]).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)  # H = −Σ_a π(a|s) log π(a|s)
        return action, log_prob, entropy, self.get_value(x)

    def act_deterministic(self, x: torch.Tensor) -> torch.Tensor:
        return self.actor(x).argmax(dim=-1)


def true_next_obs(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each env's step led to. With same-step autoreset, `next_obs` of an env whose episode just ended
    is already the first observation of its next episode; the observation the episode ended in is in `final_obs`."""
    if "_final_obs" not in infos:
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


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


def evaluate(agent, env_id: str, episodes: int, seed: int, device, video_dir: str | None = None) -> list:
    """Returns of `episodes` episodes with the most likely action, on a fresh env."""
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
            obs, reward, terminated, truncated, _ = env.step(int(action.item()))
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
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = 0 if args.checkpoint else args.total_timesteps // batch_size
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

    # env setup: same-step autoreset, so that no transition crosses a reset (see `true_next_obs`)
    video_dir = os.path.join(run_dir, "videos")
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, i, args.capture_video, video_dir) for i in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_dim = int(np.prod(envs.single_observation_space.shape))

    agent = Agent(obs_dim, int(envs.single_action_space.n)).to(device)
    if args.checkpoint:
        agent.load_state_dict(torch.load(args.checkpoint, map_location=device)["agent"])
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)

    # rollout storage, allocated once
    shape = (args.num_steps, args.num_envs)
    obs = torch.zeros(shape + (obs_dim,), device=device)
    actions = torch.zeros(shape, dtype=torch.long, device=device)
    logprobs = torch.zeros(shape, device=device)
    rewards = torch.zeros(shape, device=device)
    terminations = torch.zeros(shape, device=device)
    dones = torch.zeros(shape, device=device)
    values = torch.zeros(shape, device=device)
    final_values = torch.zeros(shape, device=device)  # V(final obs) where an episode was truncated, else 0

    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, dtype=np.int64)
    recent_returns = collections.deque(maxlen=10)
    global_step = 0
    start_time = last_print = time.time()
    next_obs_np, _ = envs.reset(seed=args.seed)
    next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * args.learning_rate

        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            with torch.inference_mode():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            actions[step], logprobs[step], values[step] = action, logprob, value

            next_obs_np, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
            rewards[step] = torch.as_tensor(reward, device=device)
            terminations[step] = torch.as_tensor(terminated, device=device)
            dones[step] = torch.as_tensor(terminated | truncated, device=device)
            final_values[step] = 0.0
            if truncated.any():
                # truncation is not termination: keep V(s_final) to bootstrap from
                final_obs = true_next_obs(next_obs_np, infos)[truncated]
                with torch.inference_mode():
                    final_value = agent.get_value(torch.as_tensor(final_obs, dtype=torch.float32, device=device))
                final_values[step, torch.as_tensor(truncated, device=device)] = final_value
            next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)

            # log every finished episode
            episode_returns += reward
            episode_lengths += 1
            for i in np.flatnonzero(terminated | truncated):
                writer.add_scalar("charts/episodic_return", episode_returns[i], global_step)
                writer.add_scalar("charts/episodic_length", episode_lengths[i], global_step)
                recent_returns.append(float(episode_returns[i]))
                episode_returns[i], episode_lengths[i] = 0.0, 0

        # ALGO LOGIC: advantages by GAE; V(s') is the next stored value, or V(s_final) where the episode ended
        with torch.inference_mode():
            next_values = torch.cat([values[1:], agent.get_value(next_obs)[None]])
        next_values = torch.where(dones.bool(), final_values, next_values)
        advantages, returns = compute_gae(
            rewards, values, next_values, terminations, dones, args.gamma, args.gae_lambda
        )

        # flatten the batch
        b_obs = obs.reshape((-1, obs_dim))
        b_actions, b_logprobs = actions.reshape(-1), logprobs.reshape(-1)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)

        # ALGO LOGIC: clipped-surrogate updates over epochs of minibatches
        clipfracs = []
        for _epoch in range(args.update_epochs):
            b_inds = torch.randperm(batch_size, device=device)
            for start in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[start : start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()  # ρ = π(a|s) / π_old(a|s)

                with torch.no_grad():
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()  # unbiased, low-variance estimator of KL(π_old‖π)
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean())

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # L_clip = E[min(ρ Â, clip(ρ, 1 − ε, 1 + ε) Â)], as a loss to minimize
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # value loss, optionally clipped around the old value estimate
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
                if not torch.isfinite(loss):
                    writer.close()
                    envs.close()
                    fail(
                        f"loss became non-finite at global step {global_step}: policy_loss={pg_loss.item()}, "
                        f"value_loss={v_loss.item()}, entropy={entropy_loss.item()}; stopping",
                        status=1,
                    )

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm, foreach=True)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        # explained variance 1 − Var[R − V] / Var[R]: how much of the return the value function predicts
        var_returns = b_returns.var()
        explained_var = float("nan") if var_returns == 0 else (1 - (b_returns - b_values).var() / var_returns).item()

        sps = int(global_step / (time.time() - start_time))
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", torch.stack(clipfracs).mean().item(), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        writer.add_scalar("charts/SPS", sps, global_step)
        if time.time() - last_print >= 2.0 or iteration == num_iterations:
            last_print = time.time()
            recent = np.mean(recent_returns) if recent_returns else float("nan")
            print(f"step={global_step} sps={sps} recent_return={recent:.1f}", flush=True)

    wall_time = time.time() - start_time
    envs.close()
    if args.save_model:
        torch.save({"agent": agent.state_dict()}, os.path.join(run_dir, f"{args.exp_name}.pt"))

    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns = evaluate(agent, args.env_id, args.eval_episodes, args.seed + 10_000, device, eval_video_dir)
    for i, episode_return in enumerate(eval_returns):
        writer.add_scalar("eval/episodic_return", episode_return, i)
    writer.close()

    summary = {
        "algo": "ppo",
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
