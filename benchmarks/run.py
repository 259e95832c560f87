"""Run a benchmark suite of benchmarks/suites.py: every (row, seed) as its own process, `python algos/<algo>.py` with
the row's arguments, exactly as a user would type it.

    python benchmarks/run.py --suite quick                 # on this machine, one run per core
    python benchmarks/run.py --suite classic --workers 2
    python benchmarks/run.py --suite mujoco --backend ray --ray-address auto   # on a Ray cluster
    python benchmarks/run.py --suite classic --only dqn c51                     # some rows only
    python benchmarks/run.py --suite mujoco --only sac td3 --seeds 1             # and some seeds only
    python benchmarks/run.py --suite tuned --env-ids LunarLander-v3              # the rows of some envs only

Each run logs to `{runs_dir}/{suite}/{row label}/{env_id}/seed_{seed}/`: the script's run folder (summary.json,
TensorBoard scalars), `output.log` (what the script printed) and `run.json` (the command, the machine, the exit status
and the wall time). A run whose summary.json exists is done and is not run again. A run without one (it crashed, timed
out, or the benchmark was killed) continues from its last snapshot when it has one (rows with `snapshot_frequency`:
`--resume`, in the same run folder, its output appended to output.log); without a snapshot it is deleted and re-run from
scratch. Failed runs are listed at the end with their error and log, and the exit status is then 1.

Backends. `local`: a pool of `--workers` processes, each run with OMP_NUM_THREADS=1 (a3c.py's rows take one slot per
worker process). `ray`: each run is a Ray task submitted to `ray.init(address=...)`, reserving the CPUs it keeps busy
(a3c.py: one per worker), the memory it needs (its replay buffer included) and `--gpus-per-run` GPUs (none: the run
does not see the node's GPUs). The repository travels to the cluster as the tasks' working directory, with the
driver's W&B and MuJoCo environment variables; on a cluster (`--ray-address`) each node installs requirements.txt
into the tasks' environment (Ray's runtime_env pip; `--no-install-requirements` when the nodes have it). A task writes
its run folder straight into `--runs-dir`, which on a cluster must be a folder every node mounts at the same path
(NFS, a mounted bucket): there its snapshots outlive the task. Ray retries a task whose worker or node died (3 times),
and the retry continues the run from its last snapshot; the run's process dies with its task's worker (Linux's
parent-death signal), so no trainer is left running beside its retry. The driver itself can run on the cluster:
`ray job submit --working-dir . -- python benchmarks/run.py --suite mujoco --backend ray --ray-address auto
--runs-dir /shared/rl-runs`. Ray is optional (requirements-cluster.txt) and imported only by that backend.

Why not Ray Tune: a trial's checkpoints would be copies of the run folder (a 1M-transition replay buffer is ~170 MB on
HalfCheetah) made through Tune's own storage layer, beside the snapshot the script already writes atomically; with a
shared folder, a plain task that resumes from that snapshot does the same with less.
"""

import contextlib
import ctypes
import dataclasses
import fcntl
import importlib
import importlib.metadata
import io
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal

import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.suites import SUITES, Row  # noqa: E402


@dataclass
class Args:
    suite: str
    """the suite to run: a name in benchmarks/suites.py (smoke, quick, classic, rainbow_ablation, continuous, mujoco,
    tabular, marl, minatar, rainbow_ablation_minatar, atari, tuned)"""
    only: tuple[str, ...] = ()
    """run only the rows with these labels (the script's name, or a row's own name)"""
    env_ids: tuple[str, ...] = ()
    """run only the rows on these envs (e.g. `--env-ids LunarLander-v3`)"""
    seeds: tuple[int, ...] = ()
    """run only these of each row's seeds (e.g. `--seeds 1`: one seed of every row first)"""
    workers: int = os.cpu_count() or 1
    """local backend: the CPU cores to fill (a run takes one; an a3c.py run one per worker process)"""
    backend: Literal["local", "ray"] = "local"
    """where the runs execute: this machine's cores, or a Ray cluster"""
    ray_address: str | None = None
    """ray backend: the cluster to join (`auto`: the one this machine belongs to; none: start a local instance)"""
    gpus_per_run: float = 0.0
    """ray backend: the GPUs each run reserves (0: runs do not see the GPUs and train on the CPU)"""
    install_requirements: bool | None = None
    """ray backend: install requirements.txt on the nodes (default: when joining a cluster with --ray-address)"""
    runs_dir: str = os.path.join(REPO, "benchmarks", "runs")
    """parent folder of the suites' run folders (ray backend on a cluster: a folder every node mounts at this path)"""
    time_limit_s: float = 6 * 3600
    """a run still going after this many seconds is stopped and counted as failed"""
    show: bool = False
    """print the command a user types to run each selected row (its first seed, or those of --seeds), and run nothing"""


@dataclass(frozen=True)
class Run:
    row: Row
    seed: int
    folder: str  # the script's --log-dir: its run folder and output.log go here
    cpus: int  # the cores the run keeps busy

    @property
    def name(self) -> str:
        return f"{self.row.label} {self.row.env_id} seed {self.seed}"


@dataclass
class Outcome:
    returncode: int
    error: str = ""  # the last line the run printed on failure, or why it was stopped


# ---------------------------------------------------------------------------------------------------------------------
# Planning: from suite rows to commands
# ---------------------------------------------------------------------------------------------------------------------
def load_algo(algo: str):
    return importlib.import_module(f"algos.{algo}")


def budget_field(algo_args_class) -> str:
    """The tabular scripts count episodes, the learners env steps, and a planner that learns nothing (mcts.py) the
    episodes it plays."""
    names = {f.name for f in dataclasses.fields(algo_args_class)}
    for name in ("total_episodes", "total_timesteps"):
        if name in names:
            return name
    return "eval_episodes"


def flag(name: str, value) -> list:
    """One Args field as tyro's command-line flags."""
    option = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [option if value else "--no-" + name.replace("_", "-")]
    return [option, str(value)]


def algo_args(row: Row, seed: int, log_dir: str) -> dict:
    """The Args fields of one run, by their Python names."""
    budget = budget_field(load_algo(row.algo).Args)
    return dict(env_id=row.env_id, seed=seed, **{budget: row.budget}, exp_name=row.label, log_dir=log_dir, **row.args)


def command(row: Row, seed: int, log_dir: str) -> list:
    """The command line of one run, as a user would type it (run from the repository's root)."""
    line = [sys.executable, os.path.join("algos", f"{row.algo}.py")]
    for name, value in algo_args(row, seed, log_dir).items():
        line += flag(name, value)
    return line


def user_command(row: Row, seed: int) -> str:
    """The command a user types for one seed of a row, from the repository's root: the row's settings, and the run
    folder under ./runs as any run of the script."""
    fields = {
        k: v for k, v in algo_args(row, seed, "runs").items() if k != "log_dir" and (k, v) != ("exp_name", row.algo)
    }
    return shlex.join(
        ["python", os.path.join("algos", f"{row.algo}.py"), *sum((flag(k, v) for k, v in fields.items()), [])]
    )


def resumable(line: list, folder: str) -> list:
    """The command that continues the run a stopped attempt left in `folder` from its last snapshot (`--resume`); with
    no snapshot there, what such an attempt left is removed and `line` starts the run from scratch."""
    resume = snapshot_folder(folder)
    if resume:
        return [*line, "--resume", resume]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return line


def check_row(row: Row) -> str | None:
    """Why a row cannot run (a missing script, an argument the script does not have, an env it cannot make or handle,
    a bad value), or None. Uses the script's own input checks, so nothing is written."""
    if not os.path.isfile(os.path.join(REPO, "algos", f"{row.algo}.py")):
        return f"algos/{row.algo}.py does not exist"
    module = load_algo(row.algo)
    known = {f.name for f in dataclasses.fields(module.Args)}
    unknown = sorted(set(row.args) - known)
    if unknown:
        return f"algos/{row.algo}.py has no argument {', '.join(unknown)}"
    if not row.seeds:
        return "no seeds"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            module.check_args(module.Args(**algo_args(row, row.seeds[0], "unused")))
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else "rejected by the script"
    return None


def plan(suite: str, rows, runs_dir: str) -> list:
    """Every (row, seed) of a suite as a Run."""
    runs = []
    for row in rows:
        cpus = getattr(load_algo(row.algo).Args(**row.args), "num_workers", 1)
        for seed in row.seeds:
            folder = os.path.join(runs_dir, suite, row.label, row.env_id.replace("/", "-"), f"seed_{seed}")
            runs.append(Run(row, seed, folder, cpus))
    return runs


def snapshot_folder(folder: str) -> str | None:
    """The run folder under `folder` that an unfinished run left with a snapshot to continue from, or None."""
    if not os.path.isdir(folder):
        return None
    for entry in sorted(os.listdir(folder)):
        if os.path.isfile(os.path.join(folder, entry, "snapshot.pt")):
            return os.path.join(folder, entry)
    return None


def summary_path(folder: str) -> str | None:
    """The summary.json of a finished run under `folder`, or None."""
    if not os.path.isdir(folder):
        return None
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry, "summary.json")
        if os.path.isfile(path):
            return path
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Executing one run (the same function runs locally and inside a Ray task)
# ---------------------------------------------------------------------------------------------------------------------
def run_env() -> dict:
    """The environment of a run: one thread per run, so that runs side by side do not fight over cores."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def machine() -> str:
    """The machine a run executes on, in words: processor, cores, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    torch_version = importlib.metadata.version("torch")
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}, torch {torch_version}"
    )


class Processes:
    """The runs' processes, so that an interrupted benchmark can stop them all. Starting a process and stopping them all
    exclude each other: a run is either started before the stop, and stopped by it, or never started."""

    def __init__(self):
        self.lock, self.running, self.stopped = threading.Lock(), {}, False

    def start(self, line: list, **popen_args) -> subprocess.Popen | None:
        """Start a process, or return None once `stop_all` has been called."""
        with self.lock:
            if self.stopped:
                return None
            process = subprocess.Popen(line, **popen_args)
            self.running[process.pid] = process
            return process

    def forget(self, process: subprocess.Popen) -> None:
        with self.lock:
            self.running.pop(process.pid, None)

    def stop_all(self) -> None:
        with self.lock:
            self.stopped = True
            running = list(self.running.values())
        for process in running:
            stop(process)


def execute(
    line: list,
    folder: str,
    time_limit_s: float,
    cwd: str,
    processes: Processes | None = None,
    env: dict | None = None,
    die_with_parent: bool = False,
) -> Outcome:
    """Run one command in its own process group, its output to `{folder}/output.log`; stop it (and whatever it started)
    after `time_limit_s`. Then write `{folder}/run.json`: the command, the machine, the exit status and the wall time.
    `processes`, if given, starts the process, so that the caller can stop it; `env`: its environment (default:
    `run_env()`); `die_with_parent`: the process is killed when the calling process dies (Linux)."""
    log_path, start = os.path.join(folder, "output.log"), time.time()
    processes = processes or Processes()
    with open(log_path, "a") as log:  # a resumed run's output follows what it printed before it stopped
        process = processes.start(
            line,
            cwd=cwd,
            env=env or run_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=parent_death_signal(signal.SIGKILL) if die_with_parent else None,
        )
        if process is None:
            return Outcome(-1, "not started: the benchmark was stopped")
        try:
            process.wait(timeout=time_limit_s)
            outcome = Outcome(process.returncode)
            if process.returncode != 0:
                outcome.error = last_line(log_path) or f"exit status {process.returncode}"
        except subprocess.TimeoutExpired:
            stop(process)
            outcome = Outcome(-1, f"stopped after the time limit of {time_limit_s:g} s")
        finally:
            processes.forget(process)
    record = dict(
        command=shlex.join(["python", *line[1:]]),
        machine=machine(),
        returncode=outcome.returncode,
        error=outcome.error,
        wall_time_s=round(time.time() - start, 1),
    )
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(record, f, indent=2)
    return outcome


def stop(process: subprocess.Popen) -> None:
    """Stop a run's whole process group: SIGTERM, then SIGKILL if it is still there 10 s later."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def last_line(path: str) -> str:
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def parent_death_signal(sig: int):
    """A `preexec_fn` that asks Linux to send `sig` to the child when the thread that started it ends (prctl
    PR_SET_PDEATHSIG): that thread waits for the run to its end, so the run dies with its harness or Ray worker. The
    function is looked up before the fork: the child only calls it."""
    prctl, PR_SET_PDEATHSIG = ctypes.CDLL(None, use_errno=True).prctl, 1
    return lambda: prctl(PR_SET_PDEATHSIG, sig)


def execute_remote(line: list, folder: str, time_limit_s: float, sees_gpus: bool) -> Outcome:
    """A Ray task: one run, writing its run folder into `folder` on the storage every node shares. A retry of the task
    (its worker or node died) continues the run from its last snapshot; a run that finished is not run again."""
    if summary_path(folder):  # finished before its worker died, unreported
        return Outcome(0)
    line = resumable([sys.executable, *line[1:]], folder)  # the node's Python
    env = run_env() | ({} if sees_gpus else {"CUDA_VISIBLE_DEVICES": ""})
    return execute(line, folder, time_limit_s, cwd=os.getcwd(), env=env, die_with_parent=True)


def memory_bytes(row: Row) -> int:
    """What a run needs in memory, for the Ray scheduler: 1 GiB (the interpreter, torch, the env) plus the replay buffer
    of a row that has one (observations stored twice, actions, reward and done, as float32)."""
    base = 2**30
    buffer_size = row.args.get("buffer_size", getattr(load_algo(row.algo).Args, "buffer_size", 0))
    if not buffer_size:
        return base
    with contextlib.suppress(Exception):
        import gymnasium as gym
        import numpy as np

        env = gym.make(row.env_id)
        obs_size, act_size = (int(np.prod(space.shape or (1,))) for space in (env.observation_space, env.action_space))
        env.close()
        return base + buffer_size * (2 * obs_size + act_size + 2) * 4
    return base


# ---------------------------------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------------------------------
class Progress:
    """One line on stderr whenever a run starts or ends, and every 30 s: done / running / failed / to go, and an ETA
    from the mean time of the runs finished so far."""

    def __init__(self, suite: str, total: int, skipped: int):
        self.suite, self.total, self.done, self.running, self.failed = suite, total, skipped, 0, 0
        self.start, self.finished_here, self.last_print = time.time(), 0, 0.0

    def update(self, started: int = 0, finished: int = 0, failed: int = 0) -> None:
        self.running += started - finished - failed
        self.done += finished
        self.failed += failed
        self.finished_here += finished + failed
        self.print()

    def print(self) -> None:
        elapsed = time.time() - self.start
        to_go = self.total - self.done - self.failed
        eta = "?"
        if self.finished_here:
            eta = duration(elapsed / self.finished_here * (to_go - self.running / 2))
        bar_width, filled = 30, int(30 * (self.done + self.failed) / max(self.total, 1))
        print(
            f"[{self.suite}] |{'#' * filled}{'.' * (bar_width - filled)}| {self.done}/{self.total} done, "
            f"{self.running} running, {self.failed} failed, {to_go} to go; {duration(elapsed)} elapsed, ETA {eta}",
            file=sys.stderr,
            flush=True,
        )
        self.last_print = time.time()

    def tick(self) -> None:
        if time.time() - self.last_print >= 30:
            self.print()


def duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


# ---------------------------------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------------------------------
def run_local(runs: list, workers: int, time_limit_s: float, progress: Progress) -> list:
    """Fill `workers` cores with runs, in order; a run wider than `workers` runs alone. Returns (Run, Outcome) pairs."""
    outcomes, pending, running, processes = [], list(runs), {}, Processes()
    with ThreadPoolExecutor(max_workers=max(len(runs), 1)) as pool:
        try:
            while pending or running:
                busy = sum(run.cpus for run in running.values())
                while pending and (not running or busy + pending[0].cpus <= workers):
                    run = pending.pop(0)
                    line = resumable(command(run.row, run.seed, run.folder), run.folder)
                    running[pool.submit(execute, line, run.folder, time_limit_s, REPO, processes, None, True)] = run
                    busy += run.cpus
                    progress.update(started=1)
                finished, _ = wait(list(running), timeout=5, return_when=FIRST_COMPLETED)
                for future in finished:
                    run = running.pop(future)
                    outcomes.append((run, future.result()))
                    ok = outcomes[-1][1].returncode == 0
                    progress.update(finished=int(ok), failed=int(not ok))
                progress.tick()
        finally:
            # interrupted (Ctrl-C, SIGTERM): stop every run still going; their folders have no summary.json, so the
            # next call re-runs them
            processes.stop_all()
    return outcomes


def start_ray(address: str | None, install_requirements: bool | None = None):
    """Join (or start) a Ray instance with the repository as the tasks' working directory, and return `execute_remote`
    as a Ray task."""
    import ray

    runtime_env = {
        "working_dir": REPO,
        "excludes": [".git", "benchmarks/runs", "runs", "**/__pycache__"],
        "env_vars": {k: v for k, v in os.environ.items() if k.startswith(("WANDB_", "MUJOCO_"))},
    }
    if install_requirements if install_requirements is not None else address is not None:
        with open(os.path.join(REPO, "requirements.txt")) as f:
            runtime_env["pip"] = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    return ray.remote(execute_remote)


def run_ray(
    runs: list,
    address: str | None,
    time_limit_s: float,
    progress: Progress,
    gpus_per_run: float = 0.0,
    install_requirements: bool | None = None,
) -> list:
    """Submit every run as a Ray task reserving what it needs; each writes its run folder into the shared runs dir.
    Returns (Run, Outcome) pairs."""
    import ray

    task = start_ray(address, install_requirements)
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
    outcomes, in_flight = [], {}
    try:
        for run in runs:
            if run.cpus > largest:  # Ray would keep it waiting for a node that never comes
                outcomes.append((run, Outcome(-1, f"needs {run.cpus} CPUs; the largest node has {largest:g}")))
                progress.update(failed=1)
                continue
            options = dict(num_cpus=run.cpus, num_gpus=gpus_per_run, memory=memory_bytes(run.row), max_retries=3)
            line = command(run.row, run.seed, run.folder)
            in_flight[task.options(**options).remote(line, run.folder, time_limit_s, gpus_per_run > 0)] = run
            progress.update(started=1)
        while in_flight:
            finished, _ = ray.wait(list(in_flight), num_returns=1, timeout=5)
            for ref in finished:
                run = in_flight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as e:
                    outcome = Outcome(-1, f"Ray task failed: {str(e).strip().splitlines()[-1]}")
                outcomes.append((run, outcome))
                ok = outcome.returncode == 0
                progress.update(finished=int(ok), failed=int(not ok))
            progress.tick()
    finally:
        for ref in in_flight:  # the runs die with their workers; their snapshots stay for the next call
            ray.cancel(ref, force=True)
        ray.shutdown()
    return outcomes


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------
def fail(message: str, status: int = 2):
    print(f"run.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def select_rows(args: Args) -> tuple:
    if args.suite not in SUITES:
        fail(f"unknown suite {args.suite!r}; the suites are {', '.join(SUITES)}")
    rows = SUITES[args.suite]
    labels = {row.label for row in rows}
    missing = [label for label in args.only if label not in labels]
    if missing:
        fail(f"suite {args.suite} has no row {', '.join(missing)}; its rows are {', '.join(sorted(labels))}")
    if args.only:
        rows = tuple(row for row in rows if row.label in args.only)
    missing = [env_id for env_id in args.env_ids if env_id not in {row.env_id for row in SUITES[args.suite]}]
    if missing:
        envs = sorted({row.env_id for row in SUITES[args.suite]})
        fail(f"suite {args.suite} has no row on {', '.join(missing)}; its envs are {', '.join(envs)}")
    if args.env_ids:
        rows = tuple(row for row in rows if row.env_id in args.env_ids)
    if args.seeds:
        rows = tuple(dataclasses.replace(row, seeds=tuple(s for s in row.seeds if s in args.seeds)) for row in rows)
        rows = tuple(row for row in rows if row.seeds)
    if not rows:
        fail(f"suite {args.suite} has no rows yet")
    return rows


def run_suite(
    suite: str,
    rows,
    runs_dir: str,
    backend: str = "local",
    workers: int = 1,
    ray_address=None,
    time_limit_s: float = 6 * 3600,
    gpus_per_run: float = 0.0,
    install_requirements: bool | None = None,
) -> list:
    """Check every row, then run what is not done yet. Returns (Run, Outcome) pairs of the runs it ran."""
    problems = [f"  {row.label} on {row.env_id}: {problem}" for row in rows if (problem := check_row(row))]
    if problems:
        fail(f"suite {suite} has rows that cannot run (nothing was run):\n" + "\n".join(problems))
    with suite_lock(runs_dir, suite):
        runs = plan(suite, rows, runs_dir)
        todo = [run for run in runs if summary_path(run.folder) is None]  # (what a stopped run left: see resumable)
        progress = Progress(suite, len(runs), len(runs) - len(todo))
        progress.print()
        if backend == "ray":
            return run_ray(todo, ray_address, time_limit_s, progress, gpus_per_run, install_requirements)
        return run_local(todo, workers, time_limit_s, progress)


@contextlib.contextmanager
def suite_lock(runs_dir: str, suite: str):
    """Hold `{runs_dir}/{suite}/.lock` while the suite runs: a second run.py on the same suite would take the first
    one's unfinished runs for crashed ones and remove them. The lock goes with the process, however it ends."""
    os.makedirs(os.path.join(runs_dir, suite), exist_ok=True)
    with open(os.path.join(runs_dir, suite, ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fail(
                f"another run.py is running suite {suite} in {runs_dir}; wait for it, or stop it (its finished runs "
                "are kept)"
            )
        yield


def report_failures(outcomes: list) -> int:
    failed = [(run, outcome) for run, outcome in outcomes if outcome.returncode != 0]
    for run, outcome in failed:
        print(f"FAILED {run.name}: {outcome.error}\n  log: {os.path.join(run.folder, 'output.log')}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(outcomes)} runs failed", file=sys.stderr)
    return 1 if failed else 0


def interrupt(signum, frame):
    """SIGTERM and SIGHUP (a closed terminal) stop the benchmark as Ctrl-C does."""
    raise KeyboardInterrupt


def main(args: Args) -> int:
    rows = select_rows(args)
    if args.show:
        for row in rows:
            for seed in row.seeds if args.seeds else row.seeds[:1]:
                print(user_command(row, seed))
        return 0
    if args.backend == "ray" and args.ray_address and args.runs_dir == Args.runs_dir:
        fail("--ray-address: give --runs-dir, a folder every node of the cluster mounts at the same path")
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    try:
        outcomes = run_suite(
            args.suite,
            rows,
            args.runs_dir,
            args.backend,
            args.workers,
            args.ray_address,
            args.time_limit_s,
            args.gpus_per_run,
            args.install_requirements,
        )
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; the others run again on the next call", file=sys.stderr)
        return 130
    return report_failures(outcomes)


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
