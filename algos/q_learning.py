"""Q-learning: off-policy temporal-difference control with a table of action values.

Watkins (1989), "Learning from Delayed Rewards", PhD thesis, Cambridge; Sutton & Barto (2018), "Reinforcement
Learning: An Introduction", 2nd edition, section 6.5. After every step the table moves toward a target that
bootstraps from the best action in the next state, Q(S, A) ← Q(S, A) + α [R + γ max_a Q(S', a) − Q(S, A)], whatever
the ε-greedy behaviour policy does next: Q-learning learns the greedy policy's values while it explores. A terminal
state is worth 0; a time-limit truncation is not terminal, so the target bootstraps from the state the episode was
cut off in. The table lives in numpy (torch only writes the TensorBoard logs).

`num_runs` independent learners, each with its own table and its own copy of the env, learn side by side (the
book's figures average many runs); their episodes' returns and lengths are saved as `episode_returns.npy` and
`episode_lengths.npy` (runs × episodes).

Spaces: Discrete observations and Discrete actions (FrozenLake-v1, Taxi-v4, CliffWalking-v1, ...); for Box
observations use dqn.py (Discrete actions) or ppo_continuous.py (Box actions).
Run: python algos/q_learning.py --env-id CliffWalking-v1
"""

# Imports
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import NoReturn

import gymnasium as gym
import numpy as np
import tyro
from torch.utils.tensorboard import SummaryWriter


# Arguments
@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (prefix of the run folder)"""
    seed: int = 1
    """seed of numpy and the envs"""
    track: bool = False
    """log to Weights & Biases, syncing TensorBoard (WANDB_MODE=offline works without an account)"""
    wandb_project_name: str = "rl-reference"
    """the W&B project name"""
    wandb_entity: str | None = None
    """the W&B entity (team)"""
    capture_video: bool = False
    """record videos of the first run's env and of its evaluation episodes into the run folder"""
    save_model: bool = False
    """write the Q-tables to `{run folder}/{exp_name}.npz`"""
    checkpoint: str | None = None
    """path of saved Q-tables: load them and only evaluate"""
    log_dir: str = "runs"
    """parent folder of the run folder"""

    # Algorithm specific arguments
    env_id: str = "CliffWalking-v1"
    """the gymnasium id of the env (defaults: Sutton & Barto's Cliff Walking, Example 6.6)"""
    total_episodes: int = 500
    """episodes of training, per run"""
    num_runs: int = 1
    """independent learners, each with its own Q-table and env"""
    eval_episodes: int = 10
    """episodes of the final greedy evaluation, per run"""
    alpha: float = 0.5
    """the step size α"""
    gamma: float = 1.0
    """the discount factor γ"""
    start_e: float = 0.1
    """ε at the start of training"""
    end_e: float = 0.1
    """ε at the end of the exploration phase (equal to start_e: a fixed ε, as in the book)"""
    exploration_fraction: float = 1.0
    """fraction of `total_episodes` over which ε falls linearly from `start_e` to `end_e`"""


# Environment, table and the algorithm's math
EVAL_STEP_LIMIT = (
    1_000  # an evaluation episode of an env without a time limit is cut off here (a greedy policy may loop)
)


def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one clear line on stderr and exit status `status` (2: bad input)."""
    print(f"{os.path.basename(__file__)}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def check_args(args: Args) -> None:
    """Reject bad input before anything is written."""
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        fail(f"checkpoint file not found: {args.checkpoint}")
    if args.checkpoint is None and args.total_episodes <= 0:
        fail(f"--total-episodes must be positive, got {args.total_episodes}")
    for name in ("num_runs", "eval_episodes"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ("alpha", "gamma", "start_e", "end_e", "exploration_fraction"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            fail(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")
    try:
        env = gym.make(args.env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {args.env_id!r}: {e}")
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(f"q_learning.py needs a Discrete action space, but {args.env_id} has {act_space}; use ppo_continuous.py")
    if not isinstance(obs_space, gym.spaces.Discrete):
        fail(f"q_learning.py needs Discrete observations, but {args.env_id} has {obs_space}; use dqn.py or ppo.py")


def make_env(env_id: str, idx: int, video_dir: str | None, max_episode_steps: int | None, record_first: int | None):
    def thunk():
        if video_dir and idx == 0:
            env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=max_episode_steps)
            trigger = (lambda episode: episode < record_first) if record_first else None  # None: cubic schedule
            env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=trigger)
        else:
            env = gym.make(env_id, max_episode_steps=max_episode_steps)
        return env

    return thunk


def make_envs(env_id: str, num_runs: int, video_dir: str | None = None, max_episode_steps=None, record_first=None):
    """One env per run, stepped together, with same-step autoreset (see `true_next_obs`); with a `video_dir`, the first
    run's env is recorded (its first `record_first` episodes, or on gymnasium's cubic schedule)."""
    return gym.vector.SyncVectorEnv(
        [make_env(env_id, i, video_dir, max_episode_steps, record_first) for i in range(num_runs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def linear_schedule(start_e: float, end_e: float, duration: float, t):
    """ε falls linearly from start_e to end_e over `duration` episodes, then stays at end_e (t may be an array)."""
    if duration <= 0:
        return np.full(np.shape(t), end_e)
    return start_e + (end_e - start_e) * np.minimum(np.asarray(t) / duration, 1.0)


def argmax_random_ties(q_values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A maximizing action for each row of q_values (runs × actions), chosen uniformly among tied maxima (np.argmax
    alone would always pick the first, a bias that matters while the table is still all zeros)."""
    is_max = q_values == q_values.max(axis=-1, keepdims=True)
    return np.argmax(np.where(is_max, rng.random(q_values.shape), -1.0), axis=-1)


def epsilon_greedy(q_values: np.ndarray, epsilon, rng: np.random.Generator) -> np.ndarray:
    """For each row of q_values (runs × actions): a uniformly random action with probability ε, else a greedy one."""
    greedy = argmax_random_ties(q_values, rng)
    random_actions = rng.integers(q_values.shape[-1], size=len(q_values))
    return np.where(rng.random(len(q_values)) < epsilon, random_actions, greedy)


def td_target(rewards, next_q_values, terminations, gamma: float):
    """Q-learning's target R + γ (1 − terminated) max_a Q(S', a) for each run; next_q_values is runs × actions.
    A terminal state is worth 0; a truncated episode is not terminal and bootstraps."""
    return rewards + gamma * (1.0 - terminations) * next_q_values.max(axis=-1)


def true_next_obs(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each env's step led to. With same-step autoreset, `next_obs` of an env whose episode just ended
    is already the first observation of its next episode; the observation the episode ended in is in `final_obs`."""
    if "_final_obs" not in infos:
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


def evaluate(q_table: np.ndarray, args: Args, video_dir: str | None = None) -> np.ndarray:
    """Returns (runs × episodes) of each run's greedy policy, ties broken at random, on fresh envs."""
    num_runs, episodes = len(q_table), args.eval_episodes
    probe = gym.make(args.env_id)
    step_limit = None if probe.spec.max_episode_steps else EVAL_STEP_LIMIT
    probe.close()
    envs = make_envs(args.env_id, num_runs, video_dir, step_limit, record_first=episodes)
    rng = np.random.default_rng(args.seed + 10_000)
    runs = np.arange(num_runs)
    returns = np.zeros((num_runs, episodes))
    episode_returns, episodes_done = np.zeros(num_runs), np.zeros(num_runs, dtype=np.int64)
    obs, _ = envs.reset(seed=args.seed + 10_000)
    while (episodes_done < episodes).any():
        actions = argmax_random_ties(q_table[runs, obs], rng)
        obs, rewards, terminations, truncations, _ = envs.step(actions)
        episode_returns += rewards
        for i in np.flatnonzero((terminations | truncations) & (episodes_done < episodes)):
            returns[i, episodes_done[i]] = episode_returns[i]
            episodes_done[i] += 1
        episode_returns[terminations | truncations] = 0.0
    envs.close()
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
    rng = np.random.default_rng(args.seed)

    # env setup: one env per run, same-step autoreset, so that no update crosses a reset (see `true_next_obs`)
    envs = make_envs(args.env_id, args.num_runs, os.path.join(run_dir, "videos") if args.capture_video else None)
    n_states, n_actions = int(envs.single_observation_space.n), int(envs.single_action_space.n)

    q_table = np.zeros((args.num_runs, n_states, n_actions))  # Q(s, a) per run; a terminal state keeps its zeros
    if args.checkpoint:
        q_table = np.load(args.checkpoint)["q_table"]
    runs = np.arange(args.num_runs)
    total_episodes = 0 if args.checkpoint else args.total_episodes
    returns = np.zeros((args.num_runs, total_episodes))  # the online return of every training episode, per run
    lengths = np.zeros((args.num_runs, total_episodes), dtype=np.int64)
    episodes_done = np.zeros(args.num_runs, dtype=np.int64)
    episode_returns = np.zeros(args.num_runs)
    episode_lengths = np.zeros(args.num_runs, dtype=np.int64)
    global_step, total_steps = 0, 0
    start_time = last_print = time.time()
    obs, _ = envs.reset(seed=args.seed)
    while (episodes_done < total_episodes).any():
        global_step += 1
        learning = episodes_done < total_episodes  # a run that has finished its episodes stops learning
        total_steps += int(learning.sum())
        # ALGO LOGIC: ε-greedy behaviour, ε decaying with each run's episode count
        epsilon = linear_schedule(args.start_e, args.end_e, args.exploration_fraction * total_episodes, episodes_done)
        actions = epsilon_greedy(q_table[runs, obs], epsilon, rng)

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        real_next_obs = true_next_obs(next_obs, infos)

        # ALGO LOGIC: Q(S, A) ← Q(S, A) + α [R + γ max_a Q(S', a) − Q(S, A)]
        target = td_target(rewards, q_table[runs, real_next_obs], terminations, args.gamma)
        td_error = target - q_table[runs, obs, actions]
        if not np.isfinite(td_error).all():
            writer.close()
            envs.close()
            fail(f"td_loss became {td_error[~np.isfinite(td_error)][0]} at global step {global_step}; stopping", 1)
        q_table[runs, obs, actions] += args.alpha * td_error * learning
        if global_step % 100 == 0:
            writer.add_scalar("losses/td_loss", float(np.mean(0.5 * td_error**2)), global_step)

        # record every finished episode; TensorBoard gets the first run's
        episode_returns += rewards
        episode_lengths += 1
        for i in np.flatnonzero((terminations | truncations) & learning):
            returns[i, episodes_done[i]], lengths[i, episodes_done[i]] = episode_returns[i], episode_lengths[i]
            episodes_done[i] += 1
            if i == 0:
                writer.add_scalar("charts/episodic_return", episode_returns[i], global_step)
                writer.add_scalar("charts/episodic_length", episode_lengths[i], global_step)
        episode_returns[terminations | truncations] = 0.0
        episode_lengths[terminations | truncations] = 0
        obs = next_obs

        if time.time() - last_print >= 2.0:
            last_print = time.time()
            sps = int(total_steps / (last_print - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)
            recent = np.mean(
                [returns[i, max(0, n - 10) : n].mean() for i, n in enumerate(episodes_done) if n > 0] or [np.nan]
            )
            print(f"step={global_step} sps={sps} episodes={episodes_done.min()} recent_return={recent:.1f}", flush=True)

    wall_time = time.time() - start_time
    envs.close()
    np.save(os.path.join(run_dir, "episode_returns.npy"), returns)
    np.save(os.path.join(run_dir, "episode_lengths.npy"), lengths)
    if args.save_model:
        np.savez(os.path.join(run_dir, f"{args.exp_name}.npz"), q_table=q_table)

    eval_video_dir = os.path.join(run_dir, "videos", "eval") if args.capture_video else None
    eval_returns = evaluate(q_table, args, eval_video_dir)
    for i, episode_return in enumerate(eval_returns[0]):
        writer.add_scalar("eval/episodic_return", episode_return, i)
    writer.close()

    summary = {
        "algo": "q_learning",
        "env_id": args.env_id,
        "seed": args.seed,
        "total_timesteps": total_steps,
        "wall_time_s": wall_time,
        "sps": total_steps / wall_time if wall_time > 0 else 0.0,
        "eval_return_mean": float(np.mean(eval_returns)),
        "eval_return_std": float(np.std(eval_returns)),
        "eval_episodes": args.eval_episodes,
        "final_train_return": float(np.mean(returns[:, -10:])) if total_episodes else None,
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
