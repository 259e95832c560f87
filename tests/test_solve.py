"""benchmarks/solve.py: the probe times the same way whatever runs under it (gymnasium.make or EnvSpec.make, vector
or single env), ends a run the moment it solves, leaves evaluation envs out; the race order rotates; the page's cells
and speedups follow from the runs; bad input is answered in one line."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import solve
from benchmarks.suites import Row

# plays random CartPole (about 22 steps an episode): one env or a vector of two, made the way SB3/the Zoo (EnvSpec.make)
# or the way CleanRL and ours do (gymnasium.make); after `episodes` episodes it makes an evaluation env and plays 3 more
PLAYER = """
import sys
import gymnasium as gym
import numpy as np

way, episodes = sys.argv[1], int(sys.argv[2])
make = (lambda: gym.spec("CartPole-v1").make()) if way == "spec" else (lambda: gym.make("CartPole-v1"))
envs = gym.vector.SyncVectorEnv([make, make], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
envs.reset(seed=1)
rng, done = np.random.default_rng(1), 0
while done < episodes:
    _, _, terminated, truncated, _ = envs.step(rng.integers(0, 2, size=2))
    done += int((terminated | truncated).sum())
evaluation = make()
for _ in range(3):
    evaluation.reset(seed=2)
    while True:
        _, _, terminated, truncated, _ = evaluation.step(1)
        if terminated or truncated:
            break
print("finished")
"""


def play(tmp_path, threshold: float, way: str = "make", episodes: int = 30, window: int = 3):
    script, probe_file = tmp_path / "player.py", tmp_path / "probe.json"
    script.write_text(PLAYER)
    env = solve.probed(dict(os.environ), str(probe_file), threshold, window)
    done = subprocess.run(
        [sys.executable, str(script), way, str(episodes)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(probe_file.read_text()), done.stdout


@pytest.mark.parametrize("way", ["make", "spec"])
def test_the_probe_ends_a_run_when_its_last_episodes_reach_the_threshold(tmp_path, way):
    probe, output = play(tmp_path, threshold=5.0, way=way)
    assert probe["solved"] and "finished" not in output
    assert probe["episodes"] == 3 and probe["window_mean"] >= 5.0 and probe["steps"] >= 15


@pytest.mark.parametrize("way", ["make", "spec"])
def test_a_run_that_never_reaches_the_threshold_reports_its_training_episodes_only(tmp_path, way):
    probe, output = play(tmp_path, threshold=1e6, way=way, episodes=30)
    assert not probe["solved"] and "finished" in output
    # the two training envs' episodes (the loop stops at 30 or 31), not the evaluation env's three made after them
    assert probe["episodes"] in (30, 31)
    assert -1e6 < probe["window_mean"] < 100


def test_a_race_runs_our_command_and_times_it_from_launch(tmp_path, monkeypatch):
    monkeypatch.setitem(solve.THRESHOLDS, "CartPole-v1", 30.0)  # random play reaches 30 over 3 episodes quickly
    monkeypatch.setattr(solve, "WINDOW", 3)
    race = solve.Race(algo="ppo", ours=Row(algo="ppo", env_id="CartPole-v1", budget=20_000), time_limit_s=120)
    args = solve.Args(runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"))
    result = solve.race_once(race, "ours", 1, args)
    assert result.solved and 0 < result.seconds <= result.wall_s and result.steps < 20_000
    assert result.command == "python algos/ppo.py --env-id CartPole-v1 --seed 1 --total-timesteps 20000"


def test_the_implementations_take_turns_and_finished_runs_are_skipped(tmp_path, monkeypatch):
    calls = []

    def fake(race, implementation, seed, args):
        calls.append((race.name, implementation, seed))
        return solve.Result(race.name, implementation, seed, "cmd", True, 1.0, 10, 1, 500.0, 1.5)

    monkeypatch.setattr(solve, "race_once", fake)
    peer = tmp_path / "python"
    peer.write_text("")
    peer.chmod(0o755)
    (tmp_path / "cleanrl" / "cleanrl_utils").mkdir(parents=True)
    args = solve.Args(
        peer_python=str(peer),
        cleanrl_dir=str(tmp_path / "cleanrl"),
        only=("dqn",),
        env_id=("CartPole-v1",),
        seeds=(1, 2, 3),
        results_dir=str(tmp_path / "results"),
    )
    assert solve.main(args) == 0
    order = [name for _, name, _ in calls]
    assert order == ["ours", "sb3_zoo", "cleanrl", "sb3_zoo", "cleanrl", "ours", "cleanrl", "ours", "sb3_zoo"]
    calls.clear()
    assert solve.main(args) == 0 and calls == []
    # the order goes by the seed, not by its place in --seeds
    args.seeds, args.results_dir = (3,), str(tmp_path / "other")
    assert solve.main(args) == 0 and [name for _, name, _ in calls] == ["cleanrl", "ours", "sb3_zoo"]


def test_a_run_that_crashes_is_reported_and_not_kept(tmp_path, monkeypatch, capsys):
    # a peer without a dependency once counted as "not solved"; now a crash is no result, and the next call retries it
    row = Row(algo="ppo", env_id="CartPole-v1", budget=1_000, args=dict(num_envs=0))  # refused: exit status 2
    race = solve.Race(algo="ppo", ours=row, time_limit_s=120)
    monkeypatch.setattr(solve, "RACES", (race,))
    args = solve.Args(
        implementations=("ours",), seeds=(1,), runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results")
    )
    assert solve.main(args) == 1
    assert "ppo CartPole-v1 ours seed 1: failed: ppo.py: error:" in capsys.readouterr().err
    assert solve.load(str(tmp_path / "results" / "runs.jsonl")) == []


def result(implementation: str, seed: int, seconds: float | None, wall_s: float = 100.0):
    return solve.Result(
        "dqn CartPole-v1", implementation, seed, "cmd", seconds is not None, seconds, 0, 0, None, wall_s
    )


def test_the_page_gives_each_seed_the_median_and_the_speedups(tmp_path):
    results = [
        *(result("ours", seed, s) for seed, s in ((1, 10.0), (2, 30.0), (3, 20.0))),
        *(result("sb3_zoo", seed, s) for seed, s in ((1, 40.0), (2, 50.0), (3, 60.0))),
        *(result("cleanrl", seed, s, wall_s=90.0) for seed, s in ((1, 35.0), (2, None), (3, 45.0))),
    ]
    page = solve.write_page(results, str(tmp_path))
    row = next(line for line in page.splitlines() if line.startswith("| dqn | CartPole-v1"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == ["475", "**20 s** (10, 30, 20; 3/3)", "**50 s** (40, 50, 60; 3/3)", "n/a (35, —, 45; 2/3)"] + [
        "2.50×",
        "the peer solved 2/3",
    ]
    assert (tmp_path / "README.md").read_text() == page


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(implementations=("ours", "gym")), "--implementations: unknown ['gym']"),
        (dict(only=("ddpg",)), "no race matches"),
        (dict(only=("dqn",), peer_python="/nonexistent/python"), "--peer-python:"),
        (dict(only=("dqn",), peer_python=sys.executable, cleanrl_dir="/nonexistent"), "--cleanrl-dir:"),
    ],
)
def test_bad_input_is_answered_in_one_line(tmp_path, capsys, fields, message):
    with pytest.raises(SystemExit) as stopped:
        solve.main(solve.Args(results_dir=str(tmp_path), **fields))
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and message in error and len(error.strip().splitlines()) == 1
