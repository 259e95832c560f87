"""Tune a script's hyperparameters with Optuna: each trial runs the script exactly as a user would (the process model
of benchmarks/run.py), and the study keeps the settings that evaluate best.

    python benchmarks/tune.py --script ppo --env-id Acrobot-v1 --trials 50
    python benchmarks/tune.py --script dqn --env-id CartPole-v1 Acrobot-v1 --seeds 2 --workers 2
    python benchmarks/tune.py --script sac --env-id Pendulum-v1 --budget 20000 --set learning_starts=1000
    python benchmarks/tune.py --script ppo --env-id Acrobot-v1 --backend ray --ray-address auto \\
        --storage postgresql://user:password@host/optuna --runs-dir /shared/rl-runs

A trial samples the script's Args fields named in its search space (benchmarks/spaces.py) with Optuna's TPE sampler,
then runs the script once per env and seed (seeds 1001, 1002, ...: the suites use 1-5, so a tuned row is verified on
seeds the tuner did not see), one run after the other. Its value is the mean final evaluation (`eval_return_mean` of
summary.json); over several envs, the mean of each env's return normalized by benchmarks/spaces.py's SCORE_RANGES.
Each run evaluates its policy `--evaluations` times as it trains (the scripts' `--eval-frequency`, read from
evaluations.jsonl in its run folder); the pruner (Optuna's median pruner) compares each evaluation with the earlier
trials' at the same point and stops a trial that falls below their median. The study's first trial is the script's
defaults, so a tuned setting never does worse than them on the tuner's seeds.

The study lives in an Optuna storage: an SQLite file by default (`{runs_dir}/tune/{study}.db`), so that a study that
was stopped or killed goes on where it stopped when the same command runs again (its finished trials are kept;
`--trials` counts them); any SQLAlchemy URL (PostgreSQL, MySQL) lets drivers on several machines share one study.
A trial whose driver died is failed by Optuna's heartbeat and run again with the same settings. Trials run on this
machine's cores (`--workers` at a time), or each run is a Ray task on a cluster (`--backend ray`, the same tasks as
run.py's, whose run folders must sit in a folder every node mounts). Not on Ray Tune: run.py's docstring says why
the harness keeps plain tasks, and Optuna's storage already gives what Tune's Optuna search would.

What it writes: every run's folder under `{runs_dir}/tune/{study}/trial_{n}/{env}/seed_{seed}/`, and a results page
`{results_dir}/{study}/README.md`: the best settings as a suite row (paste it into benchmarks/suites.py) and as the
command a user types, the best trials, and Optuna's optimization history and parameter importance plots.
"""

import dataclasses
import json
import os
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import run  # noqa: E402
from benchmarks.spaces import SCORE_RANGES, SPACES, Choice, LogUniform, Uniform  # noqa: E402
from benchmarks.suites import Row  # noqa: E402

FIRST_SEED = 1001  # trials run on seeds 1001, 1002, ...; the suites' rows on 1-5
HEARTBEAT_S = 30  # a running trial tells the storage it is alive this often; after 3 silent beats it is failed


@dataclass
class Args:
    script: str
    """the script to tune: algos/<script>.py, with a search space in benchmarks/spaces.py"""
    env_id: tuple[str, ...] = ()
    """the env or envs to tune on (default: the script's default env)"""
    trials: int = 50
    """trials the study should have finished (completed or pruned), those of earlier calls included"""
    seeds: int = 1
    """runs of each env in a trial, on seeds 1001, 1002, ..."""
    budget: int | None = None
    """each run's budget: --total-timesteps, or --total-episodes for the tabular scripts (default: the script's)"""
    set: tuple[str, ...] = ()
    """arguments every trial runs with, not searched: FIELD=VALUE, by the Args field's name (learning_starts=1000)"""
    evaluations: int = 10
    """evaluations of the policy in each run, as it trains (every budget / evaluations steps): the pruner's input"""
    prune: bool = True
    """stop a trial whose evaluation falls below the median of the earlier trials' at the same point"""
    startup_trials: int = 5
    """trials sampled at random, and run to their end, before TPE models the space and the pruner may stop one"""
    warmup_evaluations: int | None = None
    """evaluations of a trial's first run that are never pruned on (default: a third of --evaluations)"""
    workers: int = os.cpu_count() or 1
    """trials at a time (local backend: one core each; ray: trials in flight)"""
    backend: Literal["local", "ray"] = "local"
    """where the runs execute: this machine's cores, or a Ray cluster"""
    ray_address: str | None = None
    """ray backend: the cluster to join (`auto`: the one this machine belongs to; none: start a local instance)"""
    study_name: str | None = None
    """the study's name (default: the script and envs, e.g. ppo-Acrobot-v1)"""
    storage: str | None = None
    """the Optuna storage, an SQLAlchemy URL (default: sqlite:///{runs_dir}/tune/{study}.db)"""
    runs_dir: str = os.path.join(REPO, "benchmarks", "runs")
    """parent folder of the trials' run folders (ray backend on a cluster: a folder every node mounts)"""
    results_dir: str = os.path.join(REPO, "benchmarks", "results", "tune")
    """parent folder of the study's results page"""
    time_limit_s: float = 6 * 3600
    """a run still going after this many seconds is stopped and its trial failed"""


def fail(message: str, status: int = 2):
    print(f"tune.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


# ---------------------------------------------------------------------------------------------------------------------
# The study's settings, checked before anything runs
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class Study:
    script: str
    env_ids: tuple
    budget: int
    budget_field: str
    seeds: tuple
    fixed: dict  # the --set arguments
    space: dict
    eval_frequency: int
    evaluations: int
    name: str
    storage: str
    folder: str  # the trials' run folders go under here

    def row(self, env_id: str, params: dict) -> Row:
        args = {**self.fixed, **params, "eval_frequency": self.eval_frequency}
        return Row(algo=self.script, env_id=env_id, budget=self.budget, seeds=self.seeds, args=args)


def parse_value(text: str, default):
    """A --set value as the type of the field's default (a bool, int, float or string; None: a number if it is one)."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    for kind in (int, float):
        if isinstance(default, kind) or default is None:
            try:
                return kind(text)
            except ValueError:
                if default is not None:
                    raise
    return text


def settle(args: Args) -> Study:
    """Check the arguments, the script, its space and the fixed arguments (the script's own checks on its defaults and
    on a sample of its space) and return the study's settings; or fail in one line."""
    for name in ("trials", "seeds", "evaluations", "startup_trials", "workers"):
        if getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not os.path.isfile(os.path.join(REPO, "algos", f"{args.script}.py")):
        fail(f"no script algos/{args.script}.py")
    if args.script not in SPACES:
        fail(f"benchmarks/spaces.py has no search space for {args.script}; it has {', '.join(sorted(SPACES))}")
    module = run.load_algo(args.script)
    defaults = {field.name: field.default for field in dataclasses.fields(module.Args)}
    space = SPACES[args.script]
    if unknown := sorted(set(space) - set(defaults)):
        fail(f"the search space of {args.script} names {', '.join(unknown)}, not an argument of {args.script}.py")
    fixed = {}
    for item in args.set:
        name, _, text = item.partition("=")
        if not _ or name not in defaults:
            fail(
                f"--set {item}: expected FIELD=VALUE with a field of {args.script}.py's Args (e.g. learning_rate=3e-4)"
            )
        try:
            fixed[name] = parse_value(text, defaults[name])
        except ValueError as e:
            fail(f"--set {item}: {e}")
    space = {name: dist for name, dist in space.items() if name not in fixed}  # what --set gives is not searched
    budget_field = run.budget_field(module.Args)
    if budget_field == "eval_episodes" or "eval_frequency" not in defaults:
        fail(f"{args.script}.py evaluates only at its end (no --eval-frequency): it cannot be tuned here")
    env_ids = args.env_id or (defaults["env_id"],)
    if len(env_ids) > 1 and (unscaled := [env for env in env_ids if env not in SCORE_RANGES]):
        fail(f"tuning over several envs needs each env's score range in benchmarks/spaces.py: none for {unscaled[0]}")
    budget = args.budget or defaults[budget_field]
    name = args.study_name or f"{args.script}-{'+'.join(env.replace('/', '-') for env in env_ids)}"
    folder = os.path.join(args.runs_dir, "tune", name)
    storage = args.storage or f"sqlite:///{os.path.join(args.runs_dir, 'tune', name)}.db"
    study = Study(
        args.script,
        tuple(env_ids),
        budget,
        budget_field,
        tuple(range(FIRST_SEED, FIRST_SEED + args.seeds)),
        fixed,
        space,
        max(1, budget // args.evaluations),
        args.evaluations,
        name,
        storage,
        folder,
    )
    first = first_trial(space, defaults)
    for env_id in env_ids:  # an unknown env, a space the script cannot handle, a --set value out of its range, ...
        if problem := run.check_row(study.row(env_id, first)):
            fail(f"{args.script} on {env_id}, first trial ({describe({**fixed, **first})}): {problem}")
    return study


# ---------------------------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------------------------
def suggest(trial, space: dict) -> dict:
    """One value of each field of the space, from the trial's sampler."""
    params = {}
    for name, dist in space.items():
        if isinstance(dist, LogUniform):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=True)
        elif isinstance(dist, Uniform):
            params[name] = trial.suggest_float(name, dist.low, dist.high)
        elif isinstance(dist, Choice):
            params[name] = trial.suggest_categorical(name, list(dist.values))
        else:
            raise TypeError(f"{name}: {dist!r} is not a LogUniform, Uniform or Choice")
    return params


def first_trial(space: dict, defaults: dict) -> dict:
    """The script's defaults over the space: a float range takes its nearest bound for a default outside it; a choice
    that does not hold the default is left to the sampler."""
    params = {}
    for name, dist in space.items():
        if isinstance(dist, (LogUniform, Uniform)):
            params[name] = min(max(float(defaults[name]), dist.low), dist.high)
        elif defaults[name] in dist.values:
            params[name] = defaults[name]
    return params


def describe(params: dict) -> str:
    return ", ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}" for name, value in params.items()
    )


def normalized(study: Study, env_id: str, value: float) -> float:
    """A return as the objective counts it: raw on one env; over several, scaled by the env's SCORE_RANGES."""
    if len(study.env_ids) == 1:
        return value
    poor, solved = SCORE_RANGES[env_id]
    return (value - poor) / (solved - poor)


# ---------------------------------------------------------------------------------------------------------------------
# Running one run of a trial, watched: locally (a process) or as a Ray task
# ---------------------------------------------------------------------------------------------------------------------
class LocalRun:
    """A run as its own process (run.execute), started in a thread of `pool`."""

    def __init__(self, line: list, folder: str, time_limit_s: float, pool: ThreadPoolExecutor):
        self.processes = run.Processes()
        os.makedirs(folder, exist_ok=True)
        self.future = pool.submit(run.execute, line, folder, time_limit_s, REPO, self.processes, None, True)

    def result(self, timeout: float):
        """The run's Outcome, or None if it is still going after `timeout` seconds."""
        try:
            return self.future.result(timeout=timeout)
        except FutureTimeout:
            return None

    def stop(self) -> None:
        self.processes.stop_all()
        self.future.result()


class RayRun:
    """A run as a Ray task (run.execute_remote), writing into the shared runs dir."""

    def __init__(self, line: list, folder: str, time_limit_s: float, task, row: Row):
        import ray

        self.ray = ray
        os.makedirs(folder, exist_ok=True)
        options = dict(num_cpus=getattr(run.load_algo(row.algo).Args(**row.args), "num_workers", 1), max_retries=3)
        self.ref = task.options(memory=run.memory_bytes(row), **options).remote(line, folder, time_limit_s, False)

    def result(self, timeout: float):
        ready, _ = self.ray.wait([self.ref], timeout=timeout)
        if not ready:
            return None
        try:
            return self.ray.get(self.ref)
        except self.ray.exceptions.RayError as e:
            return run.Outcome(-1, f"Ray task failed: {str(e).strip().splitlines()[-1]}")

    def stop(self) -> None:
        self.ray.cancel(self.ref, force=True)


class Runner:
    """Starts runs on the chosen backend and remembers the ones going, so that an interrupted study stops them all."""

    def __init__(self, backend: str, time_limit_s: float, workers: int, ray_address: str | None = None):
        self.backend, self.time_limit_s = backend, time_limit_s
        self.pool = ThreadPoolExecutor(max_workers=max(workers, 1))
        self.task = run.start_ray(ray_address) if backend == "ray" else None
        # re-entrant: the signal handler's stop_all may interrupt this thread inside `start`
        self.lock, self.going, self.stopped = threading.RLock(), set(), False

    def start(self, row: Row, seed: int, folder: str):
        line = run.command(row, seed, folder)
        with self.lock:
            if self.stopped:
                return None
            handle = (
                RayRun(line, folder, self.time_limit_s, self.task, row)
                if self.backend == "ray"
                else LocalRun(line, folder, self.time_limit_s, self.pool)
            )
            self.going.add(handle)
            return handle

    def done(self, handle) -> None:
        with self.lock:
            self.going.discard(handle)

    def stop_all(self) -> None:
        with self.lock:
            self.stopped, going = True, list(self.going)
        for handle in going:
            handle.stop()

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        if self.backend == "ray":
            import ray

            ray.shutdown()


def read_evaluations(folder: str) -> list:
    """The evaluations.jsonl lines a run has written so far (complete lines only), from its run folder in `folder`."""
    if not os.path.isdir(folder):
        return []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry, "evaluations.jsonl")
        if os.path.isfile(path):
            with open(path) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
    return []


class RunFailed(Exception):
    """A run of a trial ended with an error: the trial fails (and the study goes on)."""


# ---------------------------------------------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------------------------------------------
def objective(trial, study: Study, runner: Runner) -> float:
    """Run the trial's settings on every env and seed in turn; report each evaluation to the pruner (the mean of the
    finished runs' normalized returns and the current run's latest evaluation) and return the mean final evaluation."""
    import optuna

    params = suggest(trial, study.space)
    runs = [(env_id, seed) for env_id in study.env_ids for seed in study.seeds]
    for env_id in study.env_ids:
        if problem := run.check_row(study.row(env_id, params)):
            trial.set_user_attr("refused", problem)
            raise optuna.TrialPruned(f"refused by the script: {problem}")
    scores, returns, last_step = [], {env_id: [] for env_id in study.env_ids}, 0
    for k, (env_id, seed) in enumerate(runs):
        row = study.row(env_id, params)
        folder = os.path.join(study.folder, f"trial_{trial.number}", env_id.replace("/", "-"), f"seed_{seed}")
        shutil.rmtree(folder, ignore_errors=True)  # what a study of the same name left here (its storage deleted)
        handle = runner.start(row, seed, folder)
        if handle is None:
            raise RunFailed("the study was stopped")
        reported, outcome = 0, None
        try:
            while outcome is None:
                outcome = handle.result(timeout=1.0)
                evaluations = read_evaluations(folder)
                for line in evaluations[reported:]:
                    done = line["episodes" if study.budget_field == "total_episodes" else "global_step"]
                    step = k * study.evaluations + min(done // study.eval_frequency, study.evaluations)
                    if step <= last_step:  # a script that rounds its budget down ends at the last evaluation's step
                        continue
                    last_step = step
                    trial.report(
                        float(sum(scores) + normalized(study, env_id, line["return_mean"])) / (len(scores) + 1), step
                    )
                    if outcome is None and trial.should_prune():  # (a run that has finished is not stopped)
                        handle.stop()
                        trial.set_user_attr("returns", returns)
                        raise optuna.TrialPruned(f"evaluation {step} below the median")
                reported = len(evaluations)
        finally:
            runner.done(handle)
        summary = run.summary_path(folder)
        if outcome.returncode != 0 or summary is None:
            trial.set_user_attr("error", f"{env_id} seed {seed}: {outcome.error}")
            raise RunFailed(f"{env_id} seed {seed}: {outcome.error}")
        with open(summary) as f:
            value = json.load(f)["eval_return_mean"]
        returns[env_id].append(value)
        scores.append(normalized(study, env_id, value))
    trial.set_user_attr("returns", returns)
    return float(sum(scores) / len(scores))


def open_study(study: Study, args: Args):
    """Create the study in its storage, or load it to go on; fail in one line if the storage cannot be reached."""
    import optuna

    try:
        if study.storage.startswith("sqlite:///"):
            os.makedirs(os.path.dirname(study.storage[len("sqlite:///") :]) or ".", exist_ok=True)
        with warnings.catch_warnings():  # the heartbeat is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                study.storage,
                engine_kwargs={"connect_args": {"timeout": 60}} if study.storage.startswith("sqlite") else {},
                heartbeat_interval=HEARTBEAT_S,
                grace_period=3 * HEARTBEAT_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        warmup = args.warmup_evaluations if args.warmup_evaluations is not None else args.evaluations // 3
        pruner = (  # the first evaluation is step 1: steps 1 to `warmup` are below n_warmup_steps
            optuna.pruners.MedianPruner(n_startup_trials=args.startup_trials, n_warmup_steps=warmup + 1)
            if args.prune
            else optuna.pruners.NopPruner()
        )
        optuna_study = optuna.create_study(
            storage=storage,
            study_name=study.name,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(n_startup_trials=args.startup_trials),
            pruner=pruner,
            load_if_exists=True,
        )
    except OSError as e:
        fail(f"cannot open the study's storage {study.storage}: {e.strerror or e}")
    except Exception as e:  # sqlalchemy's errors: an unknown dialect, a host that does not answer, ...
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        fail(f"cannot open the study's storage {study.storage}: {reason}")
    module = run.load_algo(study.script)
    defaults = {field.name: field.default for field in dataclasses.fields(module.Args)}
    optuna_study.enqueue_trial(first_trial(study.space, defaults), skip_if_exists=True)
    return optuna_study


def finished(optuna_study) -> list:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return optuna_study.get_trials(deepcopy=False, states=states)


def main(args: Args) -> int:
    study = settle(args)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial: the progress line says why, no traceback
    optuna_study = open_study(study, args)
    to_go = args.trials - len(finished(optuna_study))
    print(
        f"[tune {study.name}] {len(finished(optuna_study))} of {args.trials} trials finished; storage {study.storage}",
        file=sys.stderr,
    )
    runner = Runner(args.backend, args.time_limit_s, args.workers, args.ray_address) if to_go > 0 else None
    start = time.time()

    def interrupt(signum, frame):
        """Ctrl-C, SIGTERM, SIGHUP: stop the runs going (their trials fail: the next call samples new ones), then the
        study."""
        if runner is not None:
            runner.stop_all()
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)

    def progress(optuna_study, trial) -> None:
        complete = optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        best = max(complete, key=lambda t: t.value) if complete else None
        value = "" if trial.value is None else f" {trial.value:.4g}"
        if "error" in trial.user_attrs:
            value = f" ({trial.user_attrs['error']})"
        if "refused" in trial.user_attrs:
            value = f" (refused by the script: {trial.user_attrs['refused'].split(': error: ')[-1]})"
        best_text = f"best {best.value:.4g} (trial {best.number})" if best and best.value is not None else "no best yet"
        print(
            f"[tune {study.name}] trial {trial.number} {trial.state.name.lower()}{value}; {best_text}; "
            f"{len(finished(optuna_study))}/{args.trials} finished, {run.duration(time.time() - start)} elapsed",
            file=sys.stderr,
            flush=True,
        )

    try:
        if to_go > 0:
            optuna_study.optimize(
                lambda trial: objective(trial, study, runner),
                n_trials=to_go,
                n_jobs=args.workers,
                catch=(RunFailed,),
                callbacks=[progress],
            )
    except KeyboardInterrupt:
        print(
            f"interrupted: {len(finished(optuna_study))} finished trials are kept in {study.storage}; the same command "
            "goes on from there",
            file=sys.stderr,
        )
        return 130
    finally:
        if runner is not None:
            runner.close()
    write_page(optuna_study, study, args)
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# The results page
# ---------------------------------------------------------------------------------------------------------------------
def tuned_row(study: Study, params: dict, env_id: str) -> Row:
    """The best settings as a suite row, on the suites' seeds (floats to 3 significant digits: what a reader copies)."""
    rounded = {name: float(f"{value:.3g}") if isinstance(value, float) else value for name, value in params.items()}
    return Row(
        algo=study.script,
        env_id=env_id,
        budget=study.budget,
        args={**rounded, **study.fixed},
        name=f"{study.script}_tuned",
    )


def made_by(args: Args) -> str:
    """The command that makes this study's page: the arguments that differ from their defaults."""
    line, defaults = ["python", "benchmarks/tune.py"], Args(script=args.script)
    for field in dataclasses.fields(Args):
        value = getattr(args, field.name)
        if field.name == "script" or value != getattr(defaults, field.name):
            line += ["--" + field.name.replace("_", "-"), *map(str, value)] if isinstance(value, tuple) else []
            line += run.flag(field.name, value) if not isinstance(value, tuple) else []
    return shlex.join(line)


def write_page(optuna_study, study: Study, args: Args) -> str:
    """Write `{results_dir}/{study}/README.md` with the best settings, the best trials and Optuna's plots."""
    import optuna

    folder = os.path.join(args.results_dir, study.name)
    os.makedirs(folder, exist_ok=True)
    trials = optuna_study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
    refused = sum("refused" in t.user_attrs for t in trials)
    lines = [
        f"# Tuning {study.script} on {', '.join(study.env_ids)}",
        "",
        f"Made by `{made_by(args)}`: {args.trials} trials; in each, {study.budget} {study.budget_field.split('_')[1]} "
        f"a run on seed{'s' * (len(study.seeds) > 1)} {', '.join(map(str, study.seeds))} of each env, evaluated "
        f"{study.evaluations} times a run for the pruner. Trials: "
        + ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        + f" ({refused} of them refused by the script before running)" * bool(refused)
        + ".",
        "",
    ]
    if complete:
        best = optuna_study.best_trial
        defaults = {field.name: field.default for field in dataclasses.fields(run.load_algo(study.script).Args)}
        objective_name = "mean final evaluation" if len(study.env_ids) == 1 else "mean normalized final evaluation"
        lines += [
            f"## Best: trial {best.number}, {objective_name} {best.value:.4g}",
            "",
            "| argument | tuned | the script's default | searched |",
            "|---|---|---|---|",
        ]
        for name, value in best.params.items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| `{name}` | {shown} | {defaults.get(name)} | {space_text(study.space.get(name))} |")
        for name, value in study.fixed.items():
            lines.append(f"| `{name}` | {value} (fixed) | {defaults.get(name)} | |")
        rows = [tuned_row(study, best.params, env_id) for env_id in study.env_ids]
        lines += [
            "",
            "As a row of benchmarks/suites.py (to verify on seeds 1-3, which the tuner did not see):",
            "",
            "```python",
            *(repr_row(row) for row in rows),
            "```",
            "",
            "The command a user types:",
            "",
            "```bash",
            *(run.user_command(row, 1) for row in rows),
            "```",
            "",
            "## The best trials",
            "",
            "| trial | value | returns by env (seeds in order) | settings |",
            "|---|---|---|---|",
        ]
        for trial in sorted(complete, key=lambda t: -t.value)[:10]:
            returns = "; ".join(
                f"{env}: {', '.join(f'{v:.4g}' for v in values)}"
                for env, values in trial.user_attrs.get("returns", {}).items()
            )
            lines.append(f"| {trial.number} | {trial.value:.4g} | {returns} | {describe(trial.params)} |")
        lines += ["", *plots(optuna_study, folder)]
    else:
        lines.append("No trial has completed yet.")
    path = os.path.join(folder, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"results page {path}", file=sys.stderr)
    return path


def space_text(dist) -> str:
    if dist is None:  # searched by an earlier call of the study, fixed with --set since
        return "searched before"
    if isinstance(dist, LogUniform):
        return f"log-uniform [{dist.low:g}, {dist.high:g}]"
    if isinstance(dist, Uniform):
        return f"uniform [{dist.low:g}, {dist.high:g}]"
    return "one of " + ", ".join(str(v) for v in dist.values)


def repr_row(row: Row) -> str:
    args = ", ".join(f"{name}={value!r}" for name, value in row.args.items())
    return f"Row(algo={row.algo!r}, env_id={row.env_id!r}, budget={row.budget}, args=dict({args}), name={row.name!r}),"


def plots(optuna_study, folder: str) -> list:
    """Optuna's optimization history and parameter importances (its default evaluator) as PNGs; the page's lines
    that show them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, draw, title in (
            ("history", optuna.visualization.matplotlib.plot_optimization_history, "Optimization history"),
            ("importance", optuna.visualization.matplotlib.plot_param_importances, "Parameter importance"),
        ):
            try:
                axes = draw(optuna_study)
            except (ValueError, RuntimeError, ZeroDivisionError) as e:  # too few trials, or one value only
                lines += [
                    f"{title}: not drawn ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})",
                    "",
                ]
                continue
            axes.figure.set_size_inches(8, 5)
            axes.figure.tight_layout()
            axes.figure.savefig(os.path.join(folder, f"{name}.png"), dpi=100)
            plt.close(axes.figure)
            lines += [f"![{title}]({name}.png)", ""]
    return lines


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
