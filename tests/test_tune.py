"""benchmarks/tune.py: a study resumes after a kill with its finished trials, the pruner stops a clearly worse trial,
bad input is answered in one line, trials run on a local Ray instance, and every search space fits its script."""

import contextlib
import dataclasses
import os
import re
import sqlite3
import subprocess
import sys

import optuna
import pytest
import tyro
from helpers import PATIENCE_S, REPO, wait_until

from benchmarks import run, tune
from benchmarks.spaces import SCORE_RANGES, SPACES, Choice, LogUniform, Uniform
from benchmarks.suites import Row

# q_learning on Cliff Walking, 200 episodes (a few seconds a run): at its defaults (α 0.5) the greedy policy walks the
# 13-step path from the first evaluation on, at α 0.01 it still loops until the evaluation's cut (−1000) at the end
STUDY = "q_learning-CliffWalking-v1"
DEFAULTS = {"alpha": 0.5, "gamma": 1.0, "start_e": 0.1, "end_e": 0.1, "exploration_fraction": 1.0}


def tune_flags(
    tmp_path, *extra: str, script: str = "q_learning", env_ids=("CliffWalking-v1",), budget: int = 200
) -> list:
    return [
        *("--script", script, "--env-id", *env_ids, "--budget", str(budget), "--evaluations", "4", "--workers", "1"),
        *("--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")),
        *extra,
    ]


def storage(tmp_path, study: str = STUDY) -> str:
    return f"sqlite:///{tmp_path}/runs/tune/{study}.db"


def trials(tmp_path, *states, study: str = STUDY) -> list:
    """The study's trials in these states (all if none), or [] while the study does not exist yet."""
    try:
        study = optuna.load_study(study_name=study, storage=storage(tmp_path, study))
    except Exception:  # no database yet, or no study in it yet
        return []
    return [trial for trial in study.get_trials(deepcopy=False) if not states or trial.state in states]


COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def states_while_running(tmp_path, study: str) -> dict:
    """How many of the study's trials are in each state while its driver runs, read without writing: opening the
    storage with Optuna creates its tables when they are not there yet, which races with the driver creating them."""
    path = f"{tmp_path}/runs/tune/{study}.db"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            query = (
                "SELECT state, COUNT(*) FROM trials JOIN studies USING (study_id) WHERE study_name = ? GROUP BY state"
            )
            return dict(db.execute(query, (study,)).fetchall())
    except sqlite3.Error:  # no database yet, or not its tables yet
        return {}


def test_a_killed_study_goes_on_from_its_finished_trials(tmp_path):
    # a 3-trial study of ppo on CartPole at a tiny budget (2048 steps, 2 evaluation episodes: a few seconds a trial)
    # (the rollout fixed at 4 × 128 steps: no sample is refused, so every trial runs and the kill lands inside one)
    flags = ["--trials", "3", "--no-prune", "--set", "num_envs=4", "num_steps=128", "eval_episodes=2"]
    line = [
        *(sys.executable, "benchmarks/tune.py"),
        *tune_flags(tmp_path, *flags, script="ppo", env_ids=("CartPole-v1",), budget=2048),
    ]
    cartpole = "ppo-CartPole-v1"
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen(line, cwd=REPO, stdout=log, stderr=log)
    try:
        wait_until(
            # killed inside a trial that runs: a sample ppo refuses is pruned at once and could end the study first
            lambda: (
                {"COMPLETE", "RUNNING"} <= set(states_while_running(tmp_path, cartpole)) or driver.poll() is not None
            ),
            "a first finished trial and a running one",
            every_s=0.5,
        )
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()
    finally:
        driver.kill()  # SIGKILL: nothing of the driver runs after it
        driver.wait()
    kept = [(trial.number, trial.params, trial.value) for trial in trials(tmp_path, COMPLETE, study=cartpole)]
    ended = len(trials(tmp_path, COMPLETE, PRUNED, study=cartpole))  # what the driver counts as finished
    assert ended < 3
    # the runs of the trial it was in died with it (Linux's parent-death signal): no trainer is left behind
    wait_until(
        lambda: subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).returncode == 1,
        "the killed driver's runs to end",
    )

    result = subprocess.run(line, cwd=REPO, capture_output=True, text=True, timeout=PATIENCE_S)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"\] {ended} of 3 trials finished", result.stderr), result.stderr
    # three finished
    assert len(trials(tmp_path, COMPLETE, PRUNED, study=cartpole)) == 3
    finished = [(trial.number, trial.params, trial.value) for trial in trials(tmp_path, COMPLETE, study=cartpole)]
    assert all(trial in finished for trial in kept)
    # the first trial is the script's defaults (ent_coef 0 as the log-uniform range's lower bound, 1e-8)
    defaults = {field.name: field.default for field in dataclasses.fields(run.load_algo("ppo").Args)}
    searched = {name: dist for name, dist in SPACES["ppo"].items() if name not in ("num_envs", "num_steps")}
    assert trials(tmp_path, study=cartpole)[0].params == tune.first_trial(searched, defaults)
    assert len(tune.first_trial(searched, defaults)) == len(searched)
    with open(tmp_path / "results" / cartpole / "README.md") as f:
        page = f.read()
    best = max(finished, key=lambda trial: trial[2])
    assert f"## Best: trial {best[0]}, mean final evaluation {best[2]:.4g}" in page
    assert re.search(r"Row\(algo='ppo', env_id='CartPole-v1', budget=2048, args=dict\(.*, eval_episodes=2\)", page)
    assert "python algos/ppo.py --env-id CartPole-v1 --seed 1 --total-timesteps 2048 --exp-name ppo_tuned" in page
    assert os.path.isfile(tmp_path / "results" / cartpole / "history.png")


def test_the_pruner_stops_a_clearly_worse_trial(tmp_path, monkeypatch):
    monkeypatch.setitem(SPACES, "q_learning", {"alpha": Uniform(0.001, 1.0)})
    os.makedirs(tmp_path / "runs" / "tune")
    study = optuna.create_study(study_name=STUDY, storage=storage(tmp_path), direction="maximize")
    study.enqueue_trial({"alpha": 0.5})  # the defaults, as the tuner starts
    study.enqueue_trial({"alpha": 0.01})
    args = tyro.cli(
        tune.Args,
        args=tune_flags(tmp_path, "--trials", "2", "--startup-trials", "1", "--warmup-evaluations", "0"),
    )
    assert tune.main(args) == 0
    good, bad = trials(tmp_path)
    assert good.state == COMPLETE and good.value == -13.0 and good.intermediate_values[1] == -13.0
    # stopped at its first evaluation (after 50 of 200 episodes, −1000 against the finished trial's −13), its run
    # ended before its final evaluation
    assert bad.state == PRUNED and list(bad.intermediate_values) == [1] and bad.intermediate_values[1] == -1000.0
    folder = os.path.join(tmp_path, "runs", "tune", STUDY, "trial_1", "CliffWalking-v1", "seed_1001")
    assert run.summary_path(folder) is None and os.path.isfile(os.path.join(folder, "run.json"))


BAD_INPUT = [  # (case, extra flags, the script and envs, a word the one line says)
    ("unknown script", [], dict(script="nope"), "algos/nope.py"),
    ("a script without a search space", [], dict(script="mcts"), "no search space for mcts"),
    ("--set of a field the script lacks", ["--set", "nope=1"], {}, "--set nope=1"),
    ("--set value of the wrong type", ["--set", "alpha=high"], {}, "--set alpha=high"),
    ("--set value out of its range", ["--set", "gamma=2"], {}, "--gamma"),
    ("an unknown env", [], dict(env_ids=("NoSuchEnv-v0",)), "NoSuchEnv-v0"),
    ("several envs, one without a score range", [], dict(env_ids=("CliffWalking-v1", "FrozenLake8x8-v1")), "8x8"),
    ("no trials", ["--trials", "0"], {}, "--trials"),
    ("an unknown storage", ["--storage", "nosuchdb://host/optuna"], {}, "nosuchdb://host/optuna"),
    ("a storage that cannot be reached", ["--storage", "sqlite:////proc/no/such/study.db"], {}, "cannot open"),
]


@pytest.mark.parametrize("case,flags,target,mentions", BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_answered_in_one_line(case, flags, target, mentions, tmp_path, capsys):
    args = tyro.cli(tune.Args, args=tune_flags(tmp_path, *flags, **target))
    with pytest.raises(SystemExit) as exit_info:
        tune.main(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("tune.py: error: ") and mentions in lines[0], lines[0]
    assert not os.path.exists(tmp_path / "runs" / "tune" / STUDY)  # no trial ran


def test_a_search_space_naming_an_argument_the_script_lacks_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(SPACES, "q_learning", {"alpha": Uniform(0.1, 1.0), "learning_rate": LogUniform(1e-4, 1e-2)})
    with pytest.raises(SystemExit) as exit_info:
        tune.main(tyro.cli(tune.Args, args=tune_flags(tmp_path)))
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and "learning_rate, not an argument of q_learning" in lines[0]


def test_trials_run_on_a_local_ray_instance(tmp_path):
    args = tyro.cli(tune.Args, args=tune_flags(tmp_path, "--trials", "2", "--no-prune", "--backend", "ray"))
    assert tune.main(args) == 0
    finished = trials(tmp_path, COMPLETE)
    assert len(finished) == 2 and finished[0].params == DEFAULTS and finished[0].value == -13.0
    for trial in finished:
        folder = os.path.join(tmp_path, "runs", "tune", STUDY, f"trial_{trial.number}", "CliffWalking-v1", "seed_1001")
        assert run.summary_path(folder) is not None


def test_scores_over_several_envs_are_normalized_by_their_ranges():
    study = tune.Study("dqn", ("CartPole-v1", "Acrobot-v1"), 1, "total_timesteps", (1001,), {}, {}, 1, 1, "", "", "")
    assert tune.normalized(study, "CartPole-v1", 250.0) == 0.5  # (250 − 0) / (500 − 0)
    assert tune.normalized(study, "Acrobot-v1", -100.0) == 1.0  # (−100 + 500) / (−100 + 500)
    alone = dataclasses.replace(study, env_ids=("Acrobot-v1",))
    assert tune.normalized(alone, "Acrobot-v1", -100.0) == -100.0  # one env: the return itself


@pytest.mark.parametrize("script", sorted(SPACES))
def test_every_search_space_fits_its_script(script):
    """Its fields are the script's Args, each choice holds the script's default (the first trial is the defaults), the
    script accepts that first trial, and a sample of the space is accepted or refused in one line by the script."""
    module = run.load_algo(script)
    defaults = {field.name: field.default for field in dataclasses.fields(module.Args)}
    space = SPACES[script]
    assert set(space) <= set(defaults)
    for name, dist in space.items():
        if isinstance(dist, Choice):
            assert defaults[name] in dist.values, f"{name}: the default {defaults[name]} is not a choice"
        else:
            assert dist.low < dist.high
    first = tune.first_trial(space, defaults)
    assert set(first) == set(space)
    assert run.check_row(Row(algo=script, env_id=defaults["env_id"], budget=20_000, args=first)) is None
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        params = tune.suggest(sampler.ask(), space)
        problem = run.check_row(Row(algo=script, env_id=defaults["env_id"], budget=20_000, args=params))
        assert problem is None or (problem.startswith(f"{script}.py: error:") and "\n" not in problem), problem


def test_every_env_with_a_score_range_has_a_poor_below_solved():
    assert all(poor < solved for poor, solved in SCORE_RANGES.values())
