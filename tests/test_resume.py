"""Resumable runs (CONTRIBUTING.md, section 3): a run stopped after a snapshot and continued with --resume logs the
same episodes and ends with the same summary as the run left alone; --resume refuses, in one line, what it cannot
continue."""

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from helpers import (
    BUDGET,
    REPO,
    SMOKE_ARGS,
    Killed,
    load_algo,
    only_run_dir,
    read_scalars,
    smoke_args,
    smoke_env_id,
    stop_after_first_snapshot,
    wait_until,
)
from test_common import refused_in_one_line

RESUMABLE = sorted(
    name for name in SMOKE_ARGS if "resume" in {f.name for f in dataclasses.fields(load_algo(name).Args)}
)


def assert_same_run(left_alone: str, resumed: str) -> None:
    """The resumed run logged the same training episodes and ended with the same summary as the run left alone."""
    returns = read_scalars(left_alone, "charts/episodic_return")
    assert returns and read_scalars(resumed, "charts/episodic_return") == returns
    summaries = []
    for run_dir in (left_alone, resumed):
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
        summaries.append({key: summary[key] for key in ("total_timesteps", "eval_return_mean", "final_train_return")})
    assert summaries[0] == summaries[1]
    assert not os.path.exists(os.path.join(resumed, "snapshot.pt"))  # a finished run keeps its summary, not a snapshot


@pytest.mark.parametrize("name", RESUMABLE)
def test_a_run_stopped_after_a_snapshot_resumes_exactly(name, tmp_path, monkeypatch):
    module = load_algo(name)
    # evaluations as it trains, before and after the snapshot: the resumed run makes the same ones
    evaluates = "eval_frequency" in {field.name for field in dataclasses.fields(module.Args)}
    evaluating = {"eval_frequency": max(1, SMOKE_ARGS[name][BUDGET[name]] // 4)} if evaluates else {}
    summary = module.train(smoke_args(name, tmp_path / "alone", **evaluating))
    # the first snapshot about halfway through the run, once learning has started (optimizers and targets have moved)
    frequency = max(1, summary["total_timesteps"] // 2, SMOKE_ARGS[name].get("learning_starts", 0) + 50)

    with monkeypatch.context() as patch:
        stop_after_first_snapshot(module, patch)
        with pytest.raises(Killed):
            module.train(smoke_args(name, tmp_path / "stopped", snapshot_frequency=frequency, **evaluating))
    run_dir = only_run_dir(tmp_path / "stopped")
    saved = torch.load(os.path.join(run_dir, "snapshot.pt"), weights_only=True)
    assert 0 < saved["global_step"] < summary["total_timesteps"], "the snapshot is not from mid-run"
    with open(os.path.join(run_dir, "snapshot.pt.tmp"), "wb") as f:  # a snapshot cut short by a kill is ignored
        f.write(b"half a snapshot")
    if evaluating:  # an evaluation the stopped run made after its snapshot, and one a kill cut short, are dropped
        with open(os.path.join(run_dir, "evaluations.jsonl"), "a") as f:
            f.write(json.dumps({"global_step": saved["global_step"] + 1, "return_mean": 0.0}) + '\n{"global_st')
    module.train(smoke_args(name, tmp_path / "stopped", snapshot_frequency=frequency, resume=run_dir, **evaluating))
    assert_same_run(only_run_dir(tmp_path / "alone"), run_dir)
    if evaluating:
        evaluations = []
        for folder in (only_run_dir(tmp_path / "alone"), run_dir):
            with open(os.path.join(folder, "evaluations.jsonl")) as f:
                evaluations.append([json.loads(line) for line in f])
        assert len(evaluations[0]) >= 2 and evaluations[0] == evaluations[1]


# Killed by SIGKILL as a subprocess, at whatever instant the signal lands after the first snapshot: budgets long enough
# that the run is still going when it does.
KILLED = {
    "dqn": dict(env_id="CartPole-v1", total_timesteps=6_000, learning_starts=1_000, snapshot_frequency=2_000),
    "ppo_continuous": dict(
        env_id="Pendulum-v1", num_envs=1, num_steps=256, total_timesteps=2_048, snapshot_frequency=512
    ),
    "sac": dict(env_id="Pendulum-v1", total_timesteps=1_500, learning_starts=200, snapshot_frequency=500),
    "td3": dict(env_id="Hopper-v5", total_timesteps=1_500, learning_starts=200, snapshot_frequency=500),
}


def cli(args: dict) -> list:
    return [item for name, value in args.items() for item in (f"--{name.replace('_', '-')}", str(value))]


@pytest.mark.parametrize("name", sorted(KILLED))
def test_a_run_killed_by_sigkill_resumes_exactly(name, tmp_path):
    module = load_algo(name)
    args = {**KILLED[name], "eval_episodes": 2}
    module.train(module.Args(**args, log_dir=str(tmp_path / "alone")))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "algos", f"{name}.py"), *cli(args), "--log-dir", str(tmp_path / "killed")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        snapshot = wait_until(lambda: glob.glob(str(tmp_path / "killed" / "*" / "snapshot.pt")), "a snapshot")[0]
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    run_dir = os.path.dirname(snapshot)
    assert not os.path.exists(os.path.join(run_dir, "summary.json")), "the run ended before it was killed"
    module.train(module.Args(**args, log_dir=str(tmp_path / "killed"), resume=run_dir))
    assert_same_run(only_run_dir(tmp_path / "alone"), run_dir)


def fake_snapshot(name: str, run_dir, **entries) -> str:
    """A run folder holding a snapshot as `name` writes one (its algo, env and smoke arguments), with `entries`."""
    module = load_algo(name)
    os.makedirs(run_dir, exist_ok=True)
    args = dataclasses.asdict(module.Args(**SMOKE_ARGS[name]))
    torch.save(
        {"algo": name, "env_id": smoke_env_id(name), "args": args, **entries}, os.path.join(run_dir, "snapshot.pt")
    )
    return str(run_dir)


BAD_RESUME = {  # case: (how the run folder is made, what the one line says)
    "no snapshot": (lambda name, d: (os.makedirs(d), str(d))[1], ["no snapshot.pt"]),
    "another script": (lambda name, d: fake_snapshot(name, d, algo="other_algo"), ["other_algo.py"]),
    "another env": (lambda name, d: fake_snapshot(name, d, env_id="OtherEnv-v0"), ["OtherEnv-v0"]),
    "changed arguments": (
        lambda name, d: fake_snapshot(
            name, d, args={**dataclasses.asdict(load_algo(name).Args(**SMOKE_ARGS[name])), "seed": 7}
        ),
        ["--seed 1", "has 7"],
    ),
    "a finished run": (
        lambda name, d: (fake_snapshot(name, d), open(os.path.join(d, "summary.json"), "w").close(), str(d))[2],
        ["finished"],
    ),
    "a corrupt snapshot": (
        lambda name, d: (os.makedirs(d), open(os.path.join(d, "snapshot.pt"), "wb").write(b"junk" * 100), str(d))[2],
        ["cannot read snapshot"],
    ),
}
BAD_RESUME_CASES = [(name, case) for name in RESUMABLE for case in BAD_RESUME]


@pytest.mark.parametrize("name,case", BAD_RESUME_CASES, ids=[f"{c[1]}-{c[0]}" for c in BAD_RESUME_CASES])
def test_a_run_that_cannot_be_resumed_is_refused(name, case, tmp_path, capsys):
    module = load_algo(name)
    make_folder, mentions = BAD_RESUME[case]
    run_dir = make_folder(name, tmp_path / "run")
    args = module.Args(**{**SMOKE_ARGS[name], "resume": run_dir})
    refused_in_one_line(capsys, module.check_args, args, "--resume", *mentions)


@pytest.mark.parametrize("name", RESUMABLE)
def test_resume_with_a_checkpoint_or_a_negative_frequency_is_refused(name, tmp_path, capsys):
    module = load_algo(name)
    args = module.Args(**{**SMOKE_ARGS[name], "resume": fake_snapshot(name, tmp_path), "checkpoint": "model.pt"})
    refused_in_one_line(capsys, module.check_args, args, "--resume", "--checkpoint")
    args = module.Args(**{**SMOKE_ARGS[name], "snapshot_frequency": -1})
    refused_in_one_line(capsys, module.check_args, args, "--snapshot-frequency")


def test_every_torch_script_with_a_training_loop_can_resume():
    # a3c.py aside: its workers update shared parameters without a lock, so no two of its runs are the same anyway
    torch_scripts = {name for name in SMOKE_ARGS if hasattr(load_algo(name), "torch")}
    assert set(RESUMABLE) == torch_scripts - {"a3c"}
