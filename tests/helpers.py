"""Helpers shared by the tests: the scripts' smoke arguments, and reading run folders and TensorBoard logs."""

import glob
import os
import subprocess
import sys

import numpy as np

from benchmarks.report import read_scalars  # noqa: F401 (the tests read TensorBoard logs as report.py does)
from benchmarks.run import budget_field, load_algo
from benchmarks.suites import PLANNERS, SMOKE  # noqa: F401 (PLANNERS: the scripts that learn nothing)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGO_FILES = sorted(
    path for path in glob.glob(os.path.join(REPO, "algos", "*.py")) if not os.path.basename(path).startswith("_")
)

# Each script with the Args of a smoke run: a budget that exercises every code path (updates included) in seconds. They
# are the rows of the benchmark's smoke suite (benchmarks/suites.py), so that `benchmarks/run.py --suite smoke` runs
# exactly what these tests run.
SMOKE_ARGS = {
    row.algo: {**row.args, "env_id": row.env_id, budget_field(load_algo(row.algo).Args): row.budget} for row in SMOKE
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
    return SMOKE_ARGS[name].get("env_id", load_algo(name).Args.env_id)


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


def run_script(name: str, *cli_args: str, cwd=None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python algos/<name>.py ARGS` as a user would, capturing its output."""
    # tests/ on the path too: an env id "fake_envs:<name>" imports tests/fake_envs.py
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "algos", f"{name}.py"), *cli_args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=timeout,
    )


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
