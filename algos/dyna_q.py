"""Dyna-Q: Q-learning plus planning with a learned model of the environment.

Sutton (1990), "Integrated architectures for learning, planning, and reacting based on approximating dynamic
programming", ICML; Sutton & Barto (2018), "Reinforcement Learning: An Introduction", 2nd edition, section 8.2. Each
real step makes a Q-learning update, Q(S, A) ← Q(S, A) + α [R + γ max_a Q(S', a) − Q(S, A)], and records the outcome
in a deterministic table model, Model(S, A) = (R, S', terminated). Then `planning_steps` simulated steps each pick a
previously seen (S, A) uniformly at random, ask the model for its outcome and make the same update. Planning spreads
a newly found reward back through the table many times faster than real experience alone (the Dyna Maze of Example
8.1: `--env-id dyna-maze`, written below). A terminal state is worth 0; a time-limit truncation is not terminal, so
the target bootstraps from the state the episode was cut off in. The model assumes a deterministic env; on a
stochastic one it remembers the last outcome of each (S, A). The table lives in numpy (torch only writes the
TensorBoard logs).

`num_runs` independent learners, each with its own table, model and copy of the env, learn side by side (the book's
figures average many runs); their episodes' returns and lengths are saved as `episode_returns.npy` and
`episode_lengths.npy` (runs × episodes).

Spaces: Discrete observations and Discrete actions (dyna-maze, FrozenLake-v1, Taxi-v4, CliffWalking-v1, ...); for
Box observations use dqn.py (Discrete actions) or ppo_continuous.py (Box actions).
Run: python algos/dyna_q.py --env-id dyna-maze
Benchmarks: benchmarks/results/quick/README.md (dyna-maze).
"""

# Imports
import atexit
import collections
import json
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import NoReturn

import gymnasium as gym
import numpy as np
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm


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
    env_id: str = "dyna-maze"
    """the gymnasium id of the env, or dyna-maze (defaults: Sutton & Barto's Dyna Maze, Example 8.1)"""
    total_episodes: int = 50
    """episodes of training, per run"""
    num_runs: int = 1
    """independent learners, each with its own Q-table and env"""
    eval_episodes: int = 10
    """episodes of the final greedy evaluation, per run"""
    eval_frequency: int = 0
    """evaluate the greedy policy every N episodes, logged and written to evaluations.jsonl (0: only at the end)"""
    alpha: float = 0.1
    """the step size α"""
    gamma: float = 0.95
    """the discount factor γ"""
    start_e: float = 0.1
    """ε at the start of training"""
    end_e: float = 0.1
    """ε at the end of the exploration phase (equal to start_e: a fixed ε, as in the book)"""
    exploration_fraction: float = 1.0
    """fraction of `total_episodes` over which ε falls linearly from `start_e` to `end_e`"""
    planning_steps: int = 50
    """n: simulated updates from the model after each real step (0: plain Q-learning)"""


# The algorithm: the Dyna Maze, environments, ε-greedy, the TD target and update, the model, and the greedy evaluation
# an evaluation episode of an env without a time limit is cut off here (a greedy policy may loop)
EVAL_STEP_LIMIT = 1_000


class DynaMaze(gym.Env):
    """The maze of Sutton & Barto's Example 8.1: a 6 × 9 grid with walls, start S at (2, 0), goal G at (0, 8). Actions
    up, down, left, right move one cell unless a wall or the edge is in the way; reaching G ends the episode with
    reward +1, every other step gives 0. The shortest path takes 14 steps."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    shape, start, goal = (6, 9), (2, 0), (0, 8)
    walls = ((1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7))
    moves = ((-1, 0), (1, 0), (0, -1), (0, 1))

    def __init__(self, render_mode: str | None = None):
        self.observation_space = gym.spaces.Discrete(self.shape[0] * self.shape[1])
        self.action_space = gym.spaces.Discrete(4)
        self.render_mode, self.position = render_mode, self.start

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.start
        return self.position[0] * self.shape[1] + self.position[1], {}

    def step(self, action):
        row, col = self.position[0] + self.moves[action][0], self.position[1] + self.moves[action][1]
        if 0 <= row < self.shape[0] and 0 <= col < self.shape[1] and (row, col) not in self.walls:
            self.position = (row, col)
        at_goal = self.position == self.goal
        return self.position[0] * self.shape[1] + self.position[1], float(at_goal), at_goal, False, {}

    def render(self):
        """An RGB image, 16 pixels a cell: walls grey, goal green, the agent red."""
        grid = np.full((*self.shape, 3), 255, dtype=np.uint8)
        for wall in self.walls:
            grid[wall] = (128, 128, 128)
        grid[self.goal], grid[self.position] = (0, 160, 0), (200, 0, 0)
        return np.kron(grid, np.ones((16, 16, 1), dtype=np.uint8))


if "dyna-maze" not in gym.registry:  # gym.make("dyna-maze") makes it, as any gymnasium env
    gym.register("dyna-maze", entry_point=DynaMaze)


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


def true_next_obs(next_obs: np.ndarray, infos: dict) -> np.ndarray:
    """The observation each env's step led to. With same-step autoreset, `next_obs` of an env whose episode just ended
    is already the first observation of its next episode; the observation the episode ended in is in `final_obs`."""
    if "_final_obs" not in infos:
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        real[i] = infos["final_obs"][i]
    return real


def td_target(rewards, next_q_values, terminations, gamma: float):
    """Q-learning's target R + γ (1 − terminated) max_a Q(S', a) for each run; next_q_values is runs × actions.
    A terminal state is worth 0; a truncated episode is not terminal and bootstraps."""
    return rewards + gamma * (1.0 - terminations) * next_q_values.max(axis=-1)


def td_update(q_table: np.ndarray, obs, actions, target, alpha) -> np.ndarray:
    """Q(S, A) ← Q(S, A) + α [target − Q(S, A)] in each run's table (runs × states × actions), in place; α may be an
    array (0 leaves a run's table alone). Returns the TD errors."""
    runs = np.arange(len(q_table))
    td_error = target - q_table[runs, obs, actions]
    q_table[runs, obs, actions] += alpha * td_error
    return td_error


class TableModel:
    """Model(S, A) = (R, S', terminated) of a deterministic env, per run: the last outcome of every (S, A) seen, and
    the seen pairs (as S·|A| + A) in order of first visit, to sample from."""

    def __init__(self, num_runs: int, n_states: int, n_actions: int):
        self.rewards = np.zeros((num_runs, n_states, n_actions))
        self.next_obs = np.zeros((num_runs, n_states, n_actions), dtype=np.int64)
        self.terminations = np.zeros((num_runs, n_states, n_actions))
        self.seen = np.zeros((num_runs, n_states * n_actions), dtype=bool)
        self.seen_pairs = np.zeros((num_runs, n_states * n_actions), dtype=np.int64)
        self.num_seen = np.zeros(num_runs, dtype=np.int64)
        self.runs, self.n_actions = np.arange(num_runs), n_actions

    def update(self, obs, actions, rewards, next_obs, terminations) -> None:
        """Model(S, A) ← R, S', terminated, in every run."""
        runs = self.runs
        self.rewards[runs, obs, actions] = rewards
        self.next_obs[runs, obs, actions] = next_obs
        self.terminations[runs, obs, actions] = terminations
        pairs = obs * self.n_actions + actions
        first_visit = ~self.seen[runs, pairs]
        self.seen[runs, pairs] = True
        self.seen_pairs[runs[first_visit], self.num_seen[first_visit]] = pairs[first_visit]
        self.num_seen += first_visit

    def sample(self, rng: np.random.Generator) -> tuple:
        """A seen (S, A) drawn uniformly in every run, and its (R, S', terminated) from the model."""
        pairs = self.seen_pairs[self.runs, (rng.random(len(self.runs)) * self.num_seen).astype(np.int64)]
        obs, actions = pairs // self.n_actions, pairs % self.n_actions
        outcome = self.rewards, self.next_obs, self.terminations
        return obs, actions, *(table[self.runs, obs, actions] for table in outcome)


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


# Training
def check_args(args: Args) -> dict | None:
    """Reject bad input before anything is written; return the checkpoint to evaluate, if one is given."""
    checkpoint = check_common_args(args)
    check_positive(args, "num_runs")
    if args.planning_steps < 0:
        fail(f"--planning-steps must be 0 or more, got {args.planning_steps}")
    check_unit_interval(args, "alpha", "gamma", "start_e", "end_e", "exploration_fraction")
    obs_space, act_space = env_spaces(args.env_id)
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(f"needs a Discrete action space, but {args.env_id} has {act_space}; use ppo_continuous.py")
    if not isinstance(obs_space, gym.spaces.Discrete):
        fail(f"needs Discrete observations, but {args.env_id} has {obs_space}; use dqn.py or ppo.py")
    return checkpoint


def record_episodes(run, global_step: int, infos: dict, learning, returns, lengths, episodes_done) -> None:
    """Store the return and length of every training episode that ended in this step, in place; TensorBoard gets the
    first run's (infos from gymnasium's RecordEpisodeStatistics; a run that has finished learning is left out)."""
    if "_episode" not in infos:
        return
    for i in np.flatnonzero(infos["_episode"] & learning):
        returns[i, episodes_done[i]], lengths[i, episodes_done[i]] = infos["episode"]["r"][i], infos["episode"]["l"][i]
        episodes_done[i] += 1
        if i == 0:
            log_episode(run, global_step, returns[0, episodes_done[0] - 1], lengths[0, episodes_done[0] - 1])


def train(args: Args) -> dict:
    checkpoint = check_args(args)
    run = start_run(args)
    rng = np.random.default_rng(args.seed)
    # one env per run, same-step autoreset, so that no update crosses a reset (see `true_next_obs`)
    envs = make_envs(args.env_id, args.num_runs, run.video_dir if args.capture_video else None)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    n_states, n_actions = int(envs.single_observation_space.n), int(envs.single_action_space.n)

    q_table = np.zeros((args.num_runs, n_states, n_actions))  # Q(s, a) per run; a terminal state keeps its zeros
    if checkpoint:
        q_table = checkpoint["q_table"]
    model = TableModel(args.num_runs, n_states, n_actions)
    runs = np.arange(args.num_runs)
    total_episodes = 0 if checkpoint else args.total_episodes
    returns = np.zeros((args.num_runs, total_episodes))  # the online return of every training episode, per run
    lengths = np.zeros((args.num_runs, total_episodes), dtype=np.int64)
    episodes_done = np.zeros(args.num_runs, dtype=np.int64)
    global_step, iteration = 0, 0
    obs, _ = envs.reset(seed=args.seed)
    while (episodes_done < total_episodes).any():
        iteration += 1
        learning = episodes_done < total_episodes  # a run that has finished its episodes stops learning
        global_step += int(learning.sum())
        # collect: an ε-greedy step in every run, ε decaying with the run's episode count
        epsilon = linear_schedule(args.start_e, args.end_e, args.exploration_fraction * total_episodes, episodes_done)
        actions = epsilon_greedy(q_table[runs, obs], epsilon, rng)
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        # update: Q(S, A) ← Q(S, A) + α [R + γ max_a Q(S', a) − Q(S, A)], and Model(S, A) ← R, S', terminated
        real_next_obs = true_next_obs(next_obs, infos)
        target = td_target(rewards, q_table[runs, real_next_obs], terminations, args.gamma)
        td_error = td_update(q_table, obs, actions, target, args.alpha * learning)
        model.update(obs, actions, rewards, real_next_obs, terminations)
        # plan, n times: a seen (S, A) at random, (R, S') from the model, the same Q-learning update
        for _ in range(args.planning_steps):
            sim_obs, sim_actions, sim_rewards, sim_next_obs, sim_terminations = model.sample(rng)
            sim_target = td_target(sim_rewards, q_table[runs, sim_next_obs], sim_terminations, args.gamma)
            td_update(q_table, sim_obs, sim_actions, sim_target, args.alpha * learning)
        td_loss = float(np.mean(0.5 * td_error**2))
        check_finite(run, global_step, td_loss=td_loss)
        if iteration % 100 == 0:
            run.writer.add_scalar("losses/td_loss", td_loss, global_step)
        record_episodes(run, global_step, infos, learning, returns, lengths, episodes_done)
        obs = next_obs
        log_progress(run, global_step)
        if evaluation_due(run):  # with --eval-frequency: the greedy policy as it trains
            log_evaluation(run, evaluate(q_table, args))

    envs.close()
    np.save(os.path.join(run.dir, "episode_returns.npy"), returns)
    np.save(os.path.join(run.dir, "episode_lengths.npy"), lengths)
    eval_returns = evaluate(q_table, args, run.eval_video_dir)
    final_train_return = returns[:, -10:].mean() if total_episodes else None
    return finish_run(run, global_step, eval_returns, {"q_table": q_table}, final_train_return)


# Run plumbing: the same block in every numpy script (tests/test_layout.py checks it); no algorithm below this line.
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


def env_spaces(env_id: str) -> tuple:
    """The observation and action spaces of a gymnasium env, or a one-line failure when it cannot be made."""
    try:
        env = gym.make(env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {env_id!r}: {e}")
    spaces = env.observation_space, env.action_space
    env.close()
    if isinstance(spaces[0], gym.spaces.Box) and len(spaces[0].shape) == 3:
        fail(
            f"{env_id} observes images {spaces[0].shape}; this script takes flat vectors: for images, the scripts "
            "dqn_atari, rainbow_atari, ppo_atari (Discrete actions) or planet with --from-pixels (Box actions)"
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
    script saved for this env. Return the checkpoint's contents, or None. The budget is `total_episodes`, or for a
    script that learns nothing (and has no --checkpoint) `eval_episodes`."""
    budget = "total_episodes" if hasattr(args, "total_episodes") else "eval_episodes"
    checkpoint_path = getattr(args, "checkpoint", None)
    check_positive(args, *dict.fromkeys(["eval_episodes", *([budget] if checkpoint_path is None else [])]))
    if getattr(args, "eval_frequency", 0) < 0:
        fail(f"--eval-frequency must be 0 (only the final evaluation) or positive, got {args.eval_frequency}")
    if checkpoint_path is None:
        return None
    if not os.path.isfile(checkpoint_path):
        fail(f"checkpoint file not found: {checkpoint_path}")
    try:  # allow_pickle=False: loading a file never runs code from it
        with np.load(checkpoint_path, allow_pickle=False) as saved:
            checkpoint = {name: saved[name] for name in saved.files}
    except Exception as e:
        fail(f"cannot read checkpoint {checkpoint_path}: {type(e).__name__}")
    if str(checkpoint.get("algo")) != ALGO:
        fail(f"{checkpoint_path} is not a checkpoint of {ALGO}.py")
    if str(checkpoint.get("env_id")) != args.env_id:
        fail(f"{checkpoint_path} was saved for {checkpoint.get('env_id')}, not for --env-id {args.env_id}")
    return checkpoint


@dataclass
class Run:
    """What the plumbing keeps of a run: its folder, TensorBoard writer, clock and last training returns."""

    args: Args
    name: str
    dir: str
    writer: SummaryWriter
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

    @property
    def video_dir(self) -> str:
        return os.path.join(self.dir, "videos")

    @property
    def eval_video_dir(self) -> str | None:
        return os.path.join(self.dir, "videos", "eval") if self.args.capture_video else None


def start_run(args: Args) -> Run:
    """Make the run folder, open TensorBoard (and W&B with --track), seed python and numpy."""
    try:  # Ctrl-C while the run is set up is ignored (a handler can be set in the main thread only)
        previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        previous_sigint = None
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
    writer = SummaryWriter(run_dir)
    writer.add_text(
        "hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in asdict(args).items())
    )
    random.seed(args.seed)
    np.random.seed(args.seed)
    now = time.time()
    run = Run(args, name, run_dir, writer, now, now, now, collections.deque(maxlen=10))
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


def check_finite(run: Run, global_step: int, **values) -> None:
    """Stop the run (exit 1) when a loss or estimate is NaN or infinite (an array: its mean); what was logged so far
    stays readable."""
    values = {name: float(np.mean(value)) for name, value in values.items()}
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


def finish_run(
    run: Run, global_step: int, eval_returns, model: dict | None = None, final_train_return: float | None = None
) -> dict:
    """Save the model (with --save-model) as `{exp_name}.npz`, log the final evaluation at the last step (of runs ×
    episodes, the first run's), write summary.json atomically and return it. `final_train_return` defaults to the mean
    of the last 10 logged training returns (scripts that train many runs side by side pass all runs' mean)."""
    args, wall_time = run.args, run.last_step_time - run.start_time
    if model is not None and args.save_model:
        np.savez(os.path.join(run.dir, f"{args.exp_name}.npz"), algo=ALGO, env_id=args.env_id, **model)
    record_evaluation(run, global_step, eval_returns)
    close_run(run)
    if final_train_return is None and run.recent_returns:
        final_train_return = np.mean(run.recent_returns)
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
        "final_train_return": None if final_train_return is None else float(final_train_return),
        "args": asdict(args),
    }
    write_summary(run.dir, summary)
    print(
        f"eval_return_mean={summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f}; run folder {run.dir}"
    )
    if args.track:
        import wandb

        wandb.finish()
    return summary


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
    fail(f"interrupted at global step {run.global_step}; what was logged is kept in {run.dir}", status=130)


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
