"""Behaviour every script shares (CONTRIBUTING.md): the run folder, summary.json, bad input, determinism,
NaN handling, saving and re-evaluating a model, video capture, tracking and --help."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from helpers import (
    ALGO_FILES,
    BUDGET,
    PLANNERS,
    REPO,
    SMOKE_ARGS,
    SUMMARY_KEYS,
    WRONG_SPACE,
    assert_clean_failure,
    load_algo,
    model_file,
    only_run_dir,
    read_scalars,
    run_dirs,
    run_script,
    scalar_tags,
    script_env,
    smoke_args,
    smoke_env_id,
    wait_until,
)

ALGOS = sorted(SMOKE_ARGS)
LEARNERS = [name for name in ALGOS if name not in PLANNERS]  # the scripts that train: they log losses, save models
TORCH_LEARNERS = [name for name in LEARNERS if hasattr(load_algo(name), "torch")]  # their models are torch checkpoints
# Per script: an env of its spaces whose rewards turn NaN (tests/fake_envs.py; dyna-maze registers itself only when
# dyna_q.py is imported, after fake_envs wraps the registry's envs, so dyna_q uses Cliff Walking's; A3C's workers are
# other processes, which import the module by the id; mcts.py's first CartPole episode may outlast the 50 steps before
# the NaN, while Cliff Walking's are cut at 100; the multi-agent scripts' smoke env, an mpe2 one, is not a gymnasium
# env: they use Level-Based Foraging's, which is).
NAN_ENV = {name: f"NanReward{smoke_env_id(name)}" for name in ALGOS} | {
    "dyna_q": "NanRewardCliffWalking-v1",
    "a3c": "fake_envs:NanRewardCartPole-v1",
    "mcts": "NanRewardCliffWalking-v1",
    "hac": "NanObservationMountainCarContinuous-v0",  # hac.py learns from its own goal tests, not from rewards
    "qmix": "NanRewardForaging-8x8-2p-3f-v3",
    "maddpg": "NanRewardForaging-8x8-2p-3f-v3",
}


def test_every_script_has_smoke_args():
    """A new script joins these shared tests by an entry in the smoke table of tests/helpers.py."""
    assert sorted(os.path.basename(p)[:-3] for p in ALGO_FILES) == ALGOS


@pytest.mark.parametrize("path", ALGO_FILES, ids=lambda p: os.path.basename(p))
def test_help_works(path):
    result = run_script(os.path.basename(path)[:-3], "--help")
    assert result.returncode == 0, result.stderr
    budget_flag = "--" + BUDGET[os.path.basename(path)[:-3]].replace("_", "-")
    assert "--env-id" in result.stdout and budget_flag in result.stdout and "--seed" in result.stdout


@pytest.mark.parametrize("name", ALGOS)
def test_smoke_run_writes_summary_and_run_folder(name, tmp_path):
    summary = load_algo(name).train(smoke_args(name, tmp_path))
    run_dir = only_run_dir(tmp_path)
    env_id, exp_name, seed, unix_time = os.path.basename(run_dir).split("__")
    # an id's "/" (ALE/Pong-v5, MinAtar/Breakout-v1) becomes "-" in the folder's name
    assert (env_id, exp_name, seed) == (summary["env_id"].replace("/", "-"), name, "1") and unix_time.isdigit()

    with open(os.path.join(run_dir, "summary.json")) as f:
        on_disk = json.load(f)
    assert on_disk == summary
    assert set(summary) == SUMMARY_KEYS
    assert summary["algo"] == name and summary["seed"] == 1
    if BUDGET[name] == "total_timesteps":
        assert summary["total_timesteps"] == SMOKE_ARGS[name]["total_timesteps"]
    else:  # an episode budget: the steps it took
        assert summary["total_timesteps"] >= SMOKE_ARGS[name][BUDGET[name]]
    assert summary["eval_episodes"] == 2 and summary["sps"] > 0 and summary["wall_time_s"] > 0
    assert summary["args"][BUDGET[name]] == SMOKE_ARGS[name][BUDGET[name]]
    assert not [f for f in os.listdir(run_dir) if f.endswith(".tmp")]

    returns = read_scalars(run_dir, "charts/episodic_return")
    assert returns, "no training episode was logged"
    assert summary["final_train_return"] == pytest.approx(sum(v for _, v in returns[-10:]) / len(returns[-10:]))
    # the final evaluation is logged at the run's last step (not at steps 0, 1, …, the left edge of the curves)
    assert [step for step, _ in read_scalars(run_dir, "eval/episodic_return")][-2:] == [summary["total_timesteps"]] * 2
    assert read_scalars(run_dir, "charts/episodic_length")
    if name not in PLANNERS:
        assert any(tag.startswith("losses/") for tag in scalar_tags(run_dir)), "no loss was logged"


@pytest.mark.parametrize("name", ALGOS)
def test_same_seed_same_returns(name, tmp_path):
    module = load_algo(name)
    module.train(smoke_args(name, tmp_path / "a"))
    # the second run also evaluates the policy three times as it trains (--eval-frequency): that changes no training
    # episode, and each evaluation is logged at its step and written to evaluations.jsonl, the final one last
    evaluates = "eval_frequency" in {field.name for field in dataclasses.fields(module.Args)}
    budget = SMOKE_ARGS[name][BUDGET[name]]
    frequency = max(1, budget // 4)
    summary = module.train(smoke_args(name, tmp_path / "b", **({"eval_frequency": frequency} if evaluates else {})))
    first = read_scalars(only_run_dir(tmp_path / "a"), "charts/episodic_return")
    second = read_scalars(only_run_dir(tmp_path / "b"), "charts/episodic_return")
    assert first and first == second
    if evaluates:
        with open(os.path.join(only_run_dir(tmp_path / "b"), "evaluations.jsonl")) as f:
            evaluations = [json.loads(line) for line in f]
        done = [line["episodes" if BUDGET[name] == "total_episodes" else "global_step"] for line in evaluations]
        # one after each multiple of the frequency the run passed (two passed in one step make one), none at the end
        passed = [count // frequency for count in done[:-1]]
        assert passed and passed == sorted(set(passed)) and passed[0] >= 1 and done[-2] < budget, evaluations
        steps = [line["global_step"] for line in evaluations]
        assert steps == sorted(steps) and steps[-1] == summary["total_timesteps"]
        assert evaluations[-1]["return_mean"] == pytest.approx(summary["eval_return_mean"])
        logged = {step for step, _ in read_scalars(only_run_dir(tmp_path / "b"), "eval/episodic_return")}
        assert logged == set(steps)
    third_dir = tmp_path / "c"
    module.train(smoke_args(name, third_dir, seed=2))
    assert read_scalars(only_run_dir(third_dir), "charts/episodic_return") != first


BAD_INPUT = [  # "BUDGET" stands for the script's budget flag
    ("unknown env", ["--env-id", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    ("unknown env module", ["--env-id", "nosuchmodule:NoSuchEnv-v0"], "nosuchmodule"),
    ("zero budget", ["BUDGET", "0"], "BUDGET"),
    ("negative budget", ["BUDGET", "-5"], "BUDGET"),
]
MISSING_CHECKPOINT = ("missing checkpoint", ["--checkpoint", "no/such/model.pt"], "no/such/model.pt")
BAD_INPUT_CASES = [(name, *case) for name in ALGOS for case in BAD_INPUT]
BAD_INPUT_CASES += [(name, *MISSING_CHECKPOINT) for name in LEARNERS]  # a planner has no model to load


@pytest.mark.parametrize(
    "name,case,cli_args,mentions", BAD_INPUT_CASES, ids=[f"{c[1]}-{c[0]}" for c in BAD_INPUT_CASES]
)
def test_bad_input_fails_cleanly(name, case, cli_args, mentions, tmp_path):
    budget_flag = "--" + BUDGET[name].replace("_", "-")
    cli_args = [budget_flag if arg == "BUDGET" else arg for arg in cli_args]
    result = run_script(name, "--log-dir", str(tmp_path), *cli_args)
    assert_clean_failure(result, tmp_path, mentions.replace("BUDGET", budget_flag[2:]))


@pytest.mark.parametrize("name", TORCH_LEARNERS)
def test_a_checkpoint_of_another_script_is_refused(name, tmp_path):
    other = "c51" if name == "dqn" else "dqn"
    foreign = str(tmp_path / f"{other}.pt")
    torch.save({"algo": other, "env_id": smoke_env_id(name)}, foreign)
    log_dir = str(tmp_path / "logs")
    result = run_script(name, "--log-dir", log_dir, "--env-id", smoke_env_id(name), "--checkpoint", foreign)
    assert_clean_failure(result, log_dir, foreign, "checkpoint")


def test_a_checkpoint_saved_with_other_settings_is_refused(tmp_path):
    # c51 saved with its smoke settings, loaded with another number of atoms: other shapes, one line, no folder
    load_algo("c51").train(smoke_args("c51", tmp_path / "train", save_model=True))
    saved = model_file(only_run_dir(tmp_path / "train"), "c51")
    n_atoms = str(SMOKE_ARGS["c51"].get("n_atoms", load_algo("c51").Args.n_atoms) + 2)
    log_dir = str(tmp_path / "logs")
    result = run_script("c51", "--log-dir", log_dir, "--checkpoint", saved, "--n-atoms", n_atoms)
    assert_clean_failure(result, log_dir, saved, "other settings", "size mismatch")


@pytest.mark.parametrize("name", ALGOS)
def test_wrong_action_space_names_the_script_that_fits(name, tmp_path):
    env_id, advice = WRONG_SPACE[name]
    result = run_script(name, "--log-dir", str(tmp_path), "--env-id", env_id)
    assert_clean_failure(result, tmp_path, "action space", advice)


@pytest.mark.parametrize("name", ALGOS)
def test_nan_loss_stops_with_message_and_keeps_logs(name, tmp_path, capsys):
    budget = {"total_timesteps": 2_000, "total_episodes": 50, "eval_episodes": 50}[BUDGET[name]]
    args = smoke_args(name, tmp_path, env_id=NAN_ENV[name], **{BUDGET[name]: budget})
    with pytest.raises(SystemExit) as exit_info:
        load_algo(name).train(args)
    assert exit_info.value.code == 1
    message = capsys.readouterr().err.strip()
    # a planner has no loss: its return estimate is what turns NaN
    assert "global step" in message and ("return_estimate" if name in PLANNERS else "loss") in message
    assert "Traceback" not in message
    run_dir = only_run_dir(tmp_path)
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))
    # what was logged before the failure is intact and readable
    assert read_scalars(run_dir, "charts/episodic_length")


@pytest.mark.parametrize("name", LEARNERS)
def test_saved_model_reevaluates_to_the_same_returns(name, tmp_path):
    module = load_algo(name)
    trained = module.train(smoke_args(name, tmp_path / "train", save_model=True))
    model_path = model_file(only_run_dir(tmp_path / "train"), name)
    if model_path.endswith(".pt"):  # one layout in every torch script: who saved it, for which env, then the model
        checkpoint = torch.load(model_path, map_location="cpu", weights_only=True)
        assert checkpoint["algo"] == name and checkpoint["env_id"] == smoke_env_id(name)
    evaluated = module.train(smoke_args(name, tmp_path / "eval", checkpoint=model_path))
    # the same weights (and normalization statistics) on the same evaluation seeds give the same returns
    assert evaluated["eval_return_mean"] == trained["eval_return_mean"]
    assert evaluated["eval_return_std"] == trained["eval_return_std"]
    assert evaluated["total_timesteps"] == 0


@pytest.mark.parametrize("name", ALGOS)
def test_capture_video_records_training_and_evaluation(name, tmp_path):
    # on Cliff Walking (no time limit) an early greedy policy walks into walls until the evaluation's 1,000-step cut:
    # the toy-text scripts film FrozenLake, whose episodes end within 100 steps
    short = {"env_id": "FrozenLake-v1"} if SMOKE_ARGS[name].get("env_id") == "CliffWalking-v1" else {}
    load_algo(name).train(smoke_args(name, tmp_path, capture_video=True, **short))
    run_dir = only_run_dir(tmp_path)
    train_videos = [f for f in os.listdir(os.path.join(run_dir, "videos")) if f.endswith(".mp4")]
    eval_videos = [f for f in os.listdir(os.path.join(run_dir, "videos", "eval")) if f.endswith(".mp4")]
    assert len(eval_videos) == 2
    assert train_videos or name in PLANNERS  # a planner plays its evaluation episodes only


def test_track_logs_to_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    load_algo("dqn").train(smoke_args("dqn", tmp_path, track=True))
    run_dir = only_run_dir(tmp_path)
    offline_runs = [d for d in os.listdir(os.path.join(run_dir, "wandb")) if d.startswith("offline-run-")]
    assert offline_runs


@pytest.mark.parametrize("name", ALGOS)
def test_runs_started_in_the_same_second_get_their_own_folders(name, tmp_path, monkeypatch):
    module = load_algo(name)
    args = smoke_args(name, tmp_path)
    # the script's clock stands still: both runs start in the same second, whatever the machine's load
    monkeypatch.setattr(module, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.5))
    first_name, first_dir = module.make_run_dir(args)
    second_name, second_dir = module.make_run_dir(args)
    env_name = args.env_id.replace("/", "-")  # ALE/Pong-v5: ALE-Pong-v5
    assert first_name == f"{env_name}__{name}__1__1700000000"
    assert second_name == f"{env_name}__{name}__1__1700000001"  # the next free second
    assert os.path.isdir(first_dir) and os.path.isdir(second_dir)


@pytest.mark.parametrize("name", ALGOS)
def test_a_log_dir_that_is_a_file_fails_cleanly(name, tmp_path):
    not_a_folder = tmp_path / "runs"
    not_a_folder.write_text("a file, not a folder")
    result = run_script(name, "--log-dir", str(not_a_folder), "--env-id", smoke_env_id(name))
    assert_clean_failure(result, tmp_path / "nothing-here", "--log-dir", str(not_a_folder))
    assert not_a_folder.read_text() == "a file, not a folder"


@pytest.mark.parametrize("name", ALGOS)
def test_a_log_dir_that_cannot_be_written_fails_cleanly(name, tmp_path, capsys, monkeypatch):
    # a read-only folder, as the OS reports it (chmod cannot make one for root, which runs this suite in CI)
    module = load_algo(name)

    def read_only(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(module.os, "mkdir", read_only)
    monkeypatch.setattr(module.os, "makedirs", read_only)
    args = module.Args(**{**SMOKE_ARGS[name], "log_dir": str(tmp_path / "read-only")})
    refused_in_one_line(capsys, module.make_run_dir, args, "--log-dir", "Permission denied")


# Scripts whose networks take flat vectors refuse image observations, naming where to look instead; CarRacing-v3
# observes 96×96×3 frames (it used to fill the machine's memory through sac.py's flattened replay buffer).
IMAGE_REFUSERS = [name for name in ALGOS if "env_spaces(args.env_id)" in open(load_algo(name).__file__).read()]


@pytest.mark.parametrize("name", IMAGE_REFUSERS)
def test_an_image_observation_env_is_refused(name, capsys):
    module = load_algo(name)
    refused_in_one_line(
        capsys, module.check_args, module.Args(env_id="CarRacing-v3"), "CarRacing-v3", "images", "dqn_atari"
    )


# The image scripts refuse flat vectors, naming the vector scripts.
IMAGE_TAKERS = [
    name for name in ALGOS if "env_spaces(args.env_id, images=True)" in open(load_algo(name).__file__).read()
]


@pytest.mark.parametrize("name", IMAGE_TAKERS)
def test_a_vector_observation_env_is_refused_by_the_image_scripts(name, capsys):
    module = load_algo(name)
    refused_in_one_line(capsys, module.check_args, module.Args(env_id="CartPole-v1"), "CartPole-v1", "dqn, ppo")


# Ctrl-C: one line naming the step and the kept folder, exit status 130, and the folder marked as interrupted. A budget
# far beyond what runs before the signal; the signal is repeated until the script exits, since Ctrl-C is ignored while
# a run is being set up (from just before its folder appears until its handler is in place).
LONG_BUDGET = {"total_timesteps": 10_000_000, "total_episodes": 10_000_000, "eval_episodes": 100_000}


@pytest.mark.parametrize("name", ALGOS)
def test_ctrl_c_ends_with_one_line_and_a_marked_folder(name, tmp_path):
    budget_flag = "--" + BUDGET[name].replace("_", "-")
    env = script_env()
    cli = ["--log-dir", str(tmp_path), "--env-id", smoke_env_id(name), budget_flag, str(LONG_BUDGET[BUDGET[name]])]
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "algos", f"{name}.py"), *cli],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        run_dir = wait_until(lambda: run_dirs(tmp_path), "the run folder")[0]

        def interrupted():
            process.send_signal(signal.SIGINT)
            try:
                return process.wait(timeout=1.0) is not None
            except subprocess.TimeoutExpired:
                return False

        wait_until(interrupted, "the script to stop after Ctrl-C", every_s=0.0)
        stderr = process.stderr.read()
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "interrupted at global step" in lines[0] and run_dir in lines[0]
    with open(os.path.join(run_dir, "interrupted.json")) as f:
        assert json.load(f)["global_step"] >= 0
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))  # an interrupted run is not a finished one


# Ctrl-C while Python runs a weakref callback (as importlib's module locks use): the exit raised there is printed as
# "Exception ignored" and dropped by Python, and the run would go on
CTRL_C_IN_A_CALLBACK = """
import os, signal, sys, weakref
from helpers import load_algo, smoke_args

name, log_dir = sys.argv[1:]
run = load_algo(name).start_run(smoke_args(name, log_dir))

def callback(_):
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # the handler runs here, inside the callback
        pass

class Owner:
    pass

owner = Owner()
reference = weakref.ref(owner, callback)
del owner
print("the run went on", file=sys.stderr)
"""


@pytest.mark.parametrize("name", ["qr_dqn", "q_learning"])  # the torch and the numpy plumbing block
def test_ctrl_c_inside_a_callback_still_ends_the_run_with_one_line(name, tmp_path):
    env = script_env()
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_A_CALLBACK, name, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 130, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted at global step 0" in lines[0], result.stderr
    assert os.path.exists(os.path.join(only_run_dir(tmp_path), "interrupted.json"))


def test_a_progress_bar_at_a_terminal_and_quiet_in_a_pipe(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, os.path.join(REPO, "algos", "dqn.py"), "--total-timesteps", "6000"]
    # at a terminal: tqdm's bar with the share done, the rate, the time left, and the recent return
    terminal, script_side = pty.openpty()
    fcntl.ioctl(script_side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    process = subprocess.Popen([*cli, "--log-dir", str(tmp_path / "tty")], stdout=script_side, env=env)
    os.close(script_side)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the script closed its side
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert process.wait() == 0
    text = shown.decode(errors="replace")
    assert "100%|" in text and "6000/6000" in text and "step/s" in text and "recent_return=" in text, text
    # in a pipe: only the final line
    result = run_script("dqn", "--total-timesteps", "6000", "--log-dir", str(tmp_path / "pipe"))
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and len(lines) == 1 and lines[0].startswith("eval_return_mean="), result.stdout


@pytest.mark.parametrize("name", ["dqn", "c51", "qr_dqn", "rainbow", "ddpg", "td3", "sac"])
def test_a_replay_buffer_larger_than_memory_is_refused_before_it_is_allocated(name, capsys):
    # 10¹¹ rows of a few dozen bytes: terabytes, on any machine these tests run on
    module = load_algo(name)
    args = module.Args(**{**SMOKE_ARGS[name], "buffer_size": 10**11})
    refused_in_one_line(capsys, module.check_args, args, "--buffer-size 100000000000", "GiB")


# Every Args field with a valid range is checked before anything is written (in-process: check_args alone). Fields by
# kind, as the scripts name them; a script is tested on those it has. (dyna_q's planning_steps may be 0: Dyna-Q with no
# planning is Q-learning, a curve of the book's Figure 8.2; sac's alpha and rainbow's priority_alpha are no
# probabilities.)
POSITIVE_FIELDS = [
    "learning_rate", "vf_learning_rate", "buffer_size", "batch_size", "num_envs", "num_steps", "num_minibatches",
    "update_epochs", "train_frequency", "gradient_steps", "target_network_frequency", "max_grad_norm",
    "policy_frequency", "num_workers", "num_runs", "n_step", "n_atoms", "n_quantiles", "vf_epochs",
    "cg_iters", "backtrack_iters", "num_levels", "max_kl", "hidden_dim",
]  # fmt: skip
NON_NEGATIVE_FIELDS = ["eval_frequency", "snapshot_frequency"]  # 0: never
UNIT_FIELDS = ["gamma", "gae_lambda", "tau", "start_e", "end_e", "exploration_fraction", "backtrack_coeff"]
UNIT_FIELDS_OF = {"q_learning": ["alpha"], "sarsa": ["alpha"], "expected_sarsa": ["alpha"], "dyna_q": ["alpha"]}


def _range_cases():
    cases = []
    for name in ALGOS:
        fields = {field.name for field in dataclasses.fields(load_algo(name).Args)}
        cases += [(name, field, value) for field in POSITIVE_FIELDS if field in fields for value in (0, -1)]
        cases += [(name, field, -1) for field in NON_NEGATIVE_FIELDS if field in fields]
        unit = [field for field in UNIT_FIELDS + UNIT_FIELDS_OF.get(name, []) if field in fields]
        cases += [(name, field, value) for field in unit for value in (1.5, -0.1)]
        if {"batch_size", "buffer_size"} <= fields and name != "planet":  # planet samples sequences of steps
            cases.append((name, "batch_size", "larger than buffer_size"))
        if "learning_starts" in fields:
            cases.append((name, "learning_starts", "the whole budget"))
    return cases


RANGE_CASES = _range_cases()


@pytest.mark.parametrize("name,field,value", RANGE_CASES, ids=[f"{c[0]}-{c[1]}={c[2]}" for c in RANGE_CASES])
def test_every_argument_out_of_its_range_is_refused(name, field, value, capsys):
    module = load_algo(name)
    overrides = {field: value}
    if value == "larger than buffer_size":
        overrides = {"buffer_size": 100, "batch_size": 101}
    elif value == "the whole budget":
        overrides = {"learning_starts": SMOKE_ARGS[name]["total_timesteps"]}
    args = module.Args(**{**SMOKE_ARGS[name], **overrides})
    refused_in_one_line(capsys, module.check_args, args, "--" + field.replace("_", "-"))


def refused_in_one_line(capsys, check_args, args, *mentions: str) -> None:
    """`check_args(args)` (in-process: nothing is written before it returns) ends with exit status 2 and one line on
    stderr that says "error" and each of `mentions`."""
    with pytest.raises(SystemExit) as exit_info:
        check_args(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    assert "error" in lines[0] and all(mention in lines[0] for mention in mentions), lines[0]


def _save_checkpoint(name: str, path, **entries) -> str:
    """A checkpoint file as `name` saves one (torch or numpy), holding `entries`."""
    if name in TORCH_LEARNERS:
        torch.save(entries, f"{path}.pt")
        return f"{path}.pt"
    np.savez(f"{path}.npz", **entries)
    return f"{path}.npz"


@pytest.mark.parametrize("name", LEARNERS)
def test_a_checkpoint_saved_for_another_env_is_refused(name, tmp_path, capsys):
    # (q_learning loaded a 48-state Cliff Walking table into FrozenLake's 16 states and reported 0.3 with exit 0)
    module = load_algo(name)
    saved = _save_checkpoint(name, tmp_path / "model", algo=name, env_id="SomeOtherEnv-v0")
    args = module.Args(**{**SMOKE_ARGS[name], "checkpoint": saved})
    refused_in_one_line(capsys, module.check_args, args, saved, "SomeOtherEnv-v0", smoke_env_id(name))


@pytest.mark.parametrize("name", LEARNERS)
def test_a_corrupt_checkpoint_is_refused(name, tmp_path, capsys):
    module = load_algo(name)
    corrupt = tmp_path / ("model.pt" if name in TORCH_LEARNERS else "model.npz")
    corrupt.write_bytes(b"not a checkpoint, " * 100)
    args = module.Args(**{**SMOKE_ARGS[name], "checkpoint": str(corrupt)})
    refused_in_one_line(capsys, module.check_args, args, str(corrupt), "cannot read")
