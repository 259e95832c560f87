"""Helpers shared by the tests: the scripts' smoke arguments, reading run folders and TensorBoard logs, running a
script as a user would and checking how it fails, waiting for a condition, and rows for the replay buffers."""

import glob
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks.report import read_scalars  # noqa: F401 (the tests read TensorBoard logs as report.py does)
from benchmarks.run import budget_field, load_algo
from benchmarks.suites import PLANNERS  # noqa: F401 (the scripts that learn nothing)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGO_FILES = sorted(
    path for path in glob.glob(os.path.join(REPO, "algos", "*.py")) if not os.path.basename(path).startswith("_")
)


def _smoke(**args) -> dict:
    """A smoke run's Args: `args` and two evaluation episodes."""
    return {**args, "eval_episodes": 2}


# Each script with the Args of a smoke run: a budget that exercises every code path (updates included) in seconds. These
# are the tests' own settings (a new script joins the shared tests of test_common.py here); the benchmark's smoke suite
# in benchmarks/suites.py is free to differ.
_DQN_FAMILY = _smoke(env_id="CartPole-v1", total_timesteps=600, learning_starts=200, batch_size=32)
_OFF_POLICY = _smoke(env_id="Pendulum-v1", total_timesteps=600, learning_starts=300, batch_size=32)
_TD_CONTROL = _smoke(env_id="CliffWalking-v1", total_episodes=5)
SMOKE_ARGS = {
    "dqn": _DQN_FAMILY,
    "c51": _DQN_FAMILY,
    "qr_dqn": _DQN_FAMILY,
    "rainbow": _DQN_FAMILY,
    "ppo": _smoke(
        env_id="CartPole-v1", total_timesteps=256, num_envs=2, num_steps=64, num_minibatches=2, update_epochs=2
    ),
    # Pendulum's episodes last 200 steps: two rollouts of 128 steps per env finish one in each env
    "ppo_continuous": _smoke(
        env_id="Pendulum-v1", total_timesteps=512, num_envs=2, num_steps=128, num_minibatches=4, update_epochs=2
    ),
    "ddpg": _OFF_POLICY,
    "td3": _OFF_POLICY,
    "sac": _OFF_POLICY,
    # reinforce's batches are whole episodes: with one env, the budget ends exactly where it says
    "reinforce": _smoke(env_id="CartPole-v1", total_timesteps=400, num_envs=1),
    "a2c": _smoke(env_id="CartPole-v1", total_timesteps=400, num_envs=2, num_steps=8),
    # one worker, so that a smoke run is bit-reproducible (with more, a3c's runs are not)
    "a3c": _smoke(env_id="CartPole-v1", total_timesteps=400, num_workers=1, num_steps=8),
    "trpo": _smoke(env_id="CartPole-v1", total_timesteps=256, num_envs=2, num_steps=64, vf_epochs=2),
    # the exploration bot's default env (bandit-10) cannot render or go NaN: its smoke run uses Cliff Walking
    "exploration_bot": {**_TD_CONTROL, "num_runs": 1},
    "q_learning": _TD_CONTROL,
    "sarsa": _TD_CONTROL,
    "expected_sarsa": _TD_CONTROL,
    "dyna_q": _smoke(env_id="dyna-maze", total_episodes=5),
    # a planner's budget is its evaluation episodes
    "mcts": _smoke(env_id="CartPole-v1", num_simulations=4, rollout_depth=5),
    # 3 episodes of at most 25 steps (H = 5); `goal_space` also serves the NaN test's env, which has another id
    "hac": _smoke(
        env_id="MountainCarContinuous-v0",
        total_episodes=3,
        time_limit=5,
        batch_size=32,
        updates_per_episode=2,
        goal_space="MountainCarContinuous-v0",
    ),
    # one random episode, then one planned (100 actions of a tiny model and CEM), 2 gradient steps after each
    "planet": _smoke(
        env_id="Pendulum-v1",
        total_timesteps=400,
        seed_episodes=1,
        train_steps=2,
        batch_size=4,
        chunk_length=8,
        deterministic_size=16,
        stochastic_size=4,
        hidden_size=16,
        horizon=3,
        candidates=16,
        top_k=4,
        iterations=2,
    ),
    # 12 episodes of 25 steps: the last 8 train (and the buffers wrap); the periodic evaluation runs in its own test
    "qmix": _smoke(env_id="simple_spread_v3", total_timesteps=300, learning_starts=100, batch_size=4, buffer_size=8),
    "maddpg": _smoke(
        env_id="simple_spread_v3", total_timesteps=300, learning_starts=100, batch_size=32, train_frequency=25
    ),
    # MinAtar Breakout's random episodes last about 10 steps; a buffer of 500 steps wraps within the run
    "dqn_atari": _smoke(
        env_id="MinAtar/Breakout-v1", total_timesteps=600, learning_starts=200, batch_size=32, buffer_size=500
    ),
    "rainbow_atari": _smoke(
        env_id="MinAtar/Breakout-v1", total_timesteps=600, learning_starts=200, batch_size=32, buffer_size=500
    ),
    "ppo_atari": _smoke(
        env_id="MinAtar/Breakout-v1", total_timesteps=256, num_envs=2, num_steps=64, num_minibatches=2, update_epochs=2
    ),
}
# The tabular scripts' budget is `total_episodes`, the planner's `eval_episodes`; the others' `total_timesteps`.
BUDGET = {name: budget_field(load_algo(name).Args) for name in SMOKE_ARGS}

# Per script: an env whose action space it cannot handle, and what its error message says instead (the script that fits;
# for the scripts that take both Discrete and Box actions, that they need one of them).
WRONG_SPACE = {
    **{name: ("fake_envs:MultiDiscreteCartPole-v1", "Discrete or Box") for name in ("reinforce", "a2c", "a3c", "trpo")},
    **{name: ("Pendulum-v1", "ppo_continuous.py") for name in ("dqn", "c51", "qr_dqn", "rainbow")},
    "ppo": ("Pendulum-v1", "ppo_continuous.py"),
    "ppo_continuous": ("CartPole-v1", "ppo.py"),
    "ddpg": ("CartPole-v1", "dqn.py"),
    "td3": ("CartPole-v1", "dqn.py"),
    "sac": ("CartPole-v1", "dqn.py"),
    "mcts": ("Pendulum-v1", "ppo_continuous.py"),
    "hac": ("CartPole-v1", "dqn.py"),
    "planet": ("CartPole-v1", "mcts.py"),
    "qmix": ("fake_envs:TwoPendulums-v0", "maddpg.py"),
    "maddpg": ("Pendulum-v1", "ddpg.py"),
    "dqn_atari": ("CarRacing-v3", "ppo_continuous.py"),  # images with Box actions
    "ppo_atari": ("CarRacing-v3", "ppo_continuous.py"),
    "rainbow_atari": ("CarRacing-v3", "ppo_continuous.py"),
    **{
        name: ("Pendulum-v1", "ppo_continuous.py")
        for name in ("exploration_bot", "q_learning", "sarsa", "expected_sarsa", "dyna_q")
    },
}
SUMMARY_KEYS = {
    "algo",
    "env_id",
    "seed",
    "total_timesteps",
    "wall_time_s",
    "sps",
    "eval_return_mean",
    "eval_return_std",
    "eval_episodes",
    "final_train_return",
    "args",
}


def smoke_args(name: str, tmp_path, **overrides):
    """The Args of a smoke run of `name` logging under tmp_path."""
    module = load_algo(name)
    return module.Args(log_dir=str(tmp_path), **{**SMOKE_ARGS[name], **overrides})


def smoke_env_id(name: str) -> str:
    """The env of a script's smoke run."""
    return SMOKE_ARGS[name]["env_id"]


def model_file(run_dir: str, name: str) -> str:
    """The saved model of a run: `{name}.pt` (torch scripts) or `{name}.npz` (tabular scripts)."""
    paths = glob.glob(os.path.join(run_dir, f"{name}.pt")) + glob.glob(os.path.join(run_dir, f"{name}.npz"))
    assert len(paths) == 1, f"expected one saved model in {run_dir}, found {paths}"
    return paths[0]


def run_dirs(log_dir) -> list:
    """The run folders under a log dir."""
    return sorted(glob.glob(os.path.join(str(log_dir), "*__*__*__*")))


def only_run_dir(log_dir) -> str:
    dirs = run_dirs(log_dir)
    assert len(dirs) == 1, f"expected one run folder in {log_dir}, found {dirs}"
    return dirs[0]


def scalar_tags(run_dir: str) -> list:
    """The TensorBoard scalar tags logged in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator.Tags()["scalars"]


class Killed(Exception):
    """The end of a run stopped right after a snapshot, as a SIGKILL would end it (in-process, without the race)."""


def stop_after_first_snapshot(module, monkeypatch):
    """Make `module` write its first snapshot and stop there: the TensorBoard writer is closed (what was logged up to
    then reaches the disk, as it may before a kill) and the run raises Killed."""
    write_snapshot = module.snapshot

    def snapshot_then_stop(run, objects, **values):
        write_snapshot(run, objects, **values)
        if os.path.exists(os.path.join(run.dir, "snapshot.pt")):
            module.close_run(run)
            raise Killed

    monkeypatch.setattr(module, "snapshot", snapshot_then_stop)


# How long a test waits for a process or a condition before it calls it hung. Only a hang guard, generous because the
# suite runs its tests side by side on few cores (`-n auto`): no test asserts how fast something runs.
PATIENCE_S = 600


def wait_until(condition, what: str, timeout_s: float = PATIENCE_S, every_s: float = 0.05):
    """Poll `condition()` until it returns something true, and return that; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up after {timeout_s:g} s waiting for {what}"
        time.sleep(every_s)
    return result


def script_env() -> dict:
    """The environment of a script's process in the tests: one thread, and tests/ on the path too (an env id
    "fake_envs:<name>" imports tests/fake_envs.py)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}


def run_script(name: str, *cli_args: str, cwd=None, timeout: float = PATIENCE_S) -> subprocess.CompletedProcess:
    """Run `python algos/<name>.py ARGS` as a user would, capturing its output."""
    env = script_env()
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "algos", f"{name}.py"), *cli_args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, log_dir, *mentions: str) -> None:
    """A script refused its input as CONTRIBUTING.md says: exit status 2, one line on stderr that says "error" and each
    of `mentions`, no traceback, and nothing written under `log_dir`."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "error" in lines[0]
    for mention in mentions:
        assert mention in lines[0], (mention, lines[0])
    assert not os.path.exists(log_dir) or not os.listdir(log_dir), f"{log_dir} holds {os.listdir(log_dir)}"


# The 0.999 quantile of χ² with 9 degrees of freedom: a uniform sampler over 10 rows exceeds it in 1 seed of 1000.
CHI_SQUARE_9_DOF_QUANTILE_999 = 27.88


def chi_square(samples: np.ndarray, probs: np.ndarray) -> float:
    """Pearson's χ² statistic of integer samples in [0, len(probs)) against the distribution `probs`."""
    counts = np.bincount(samples, minlength=len(probs))
    expected = len(samples) * np.asarray(probs, dtype=np.float64)
    return float(((counts - expected) ** 2 / expected).sum())


def chi_square_against_uniform(samples: np.ndarray, n_values: int) -> float:
    """Pearson's χ² statistic of integer samples in [0, n_values) against the uniform distribution."""
    return chi_square(samples, np.full(n_values, 1.0 / n_values))


def assert_learns(module, tmp_path, max_timesteps: int, min_return: float, **overrides) -> dict:
    """A learning test's body: train with the script's defaults (seed 1 unless overridden), then check that it used at
    most `max_timesteps` env steps and that its final evaluation mean reached `min_return`."""
    summary = module.train(module.Args(**{"seed": 1, "log_dir": str(tmp_path), **overrides}))
    assert summary["total_timesteps"] <= max_timesteps
    assert summary["eval_return_mean"] >= min_return, summary["eval_return_mean"]
    return summary


def transition(value: float, obs_dim: int = 2, act_dim: int | None = None) -> tuple:
    """One env's step as a replay buffer's `add(obs, next_obs, actions, rewards, terminations)` takes it, every field a
    function of `value`, so that a sampled row tells which step it came from and whether its fields stayed together:
    obs = value, next obs = value + 0.5, action = int(value) % 3 (discrete, `act_dim` None) or -value in each of
    `act_dim` entries (continuous), reward = 10 · value, terminated when value is even."""
    if act_dim is None:
        actions = np.array([int(value) % 3])
    else:
        actions = np.full((1, act_dim), -value, dtype=np.float32)
    return (
        np.full((1, obs_dim), value, dtype=np.float32),
        np.full((1, obs_dim), value + 0.5, dtype=np.float32),
        actions,
        np.array([value * 10]),
        np.array([value % 2 == 0]),
    )


def transitions(values, obs_dim: int = 2, act_dim: int | None = None) -> tuple:
    """One step of several envs: the `transition` of each value, stacked env by env."""
    rows = [transition(value, obs_dim, act_dim) for value in values]
    return tuple(np.concatenate(field) for field in zip(*rows, strict=True))
