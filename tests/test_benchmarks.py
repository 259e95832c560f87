"""The benchmark harness: benchmarks/run.py (checking rows, resuming, reporting failures, the Ray backend) and
benchmarks/report.py (aggregation over seeds against hand-computed numbers)."""

import dataclasses
import fcntl
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tyro
from helpers import ALGO_FILES, PATIENCE_S, REPO, Killed, load_algo, run_dirs, stop_after_first_snapshot, wait_until
from torch.utils.tensorboard import SummaryWriter

from benchmarks import gpu_sps, report, run
from benchmarks.suites import SMOKE, SUITES, Row

SMOKE_ROWS = {row.algo: row for row in SMOKE}  # the benchmark's smoke suite: one row a script


# ---------------------------------------------------------------------------------------------------------------------
# report.py: statistics
# ---------------------------------------------------------------------------------------------------------------------
def test_iqm_cuts_a_quarter_from_each_end():
    assert report.iqm([3.0, 1.0, 2.0]) == 2.0  # 3 values: floor(3/4) = 0 cut, the plain mean
    assert report.iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == 3.0  # 5 values: one cut from each end, mean of 2, 3, 4
    assert report.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # 8 values: two cut from each end, mean of 3, 4, 5, 6


def test_rliable_iqm_of_four_seeds_is_the_mean_of_the_middle_two():
    assert report.iqm([10.0, 1.0, 4.0, 2.0]) == 3.0  # 1 and 10 cut, the mean of 2 and 4
    # A resample's IQM is the mean of its 2nd and 3rd smallest draws: it is 1 when at least three of the four draws
    # are the 1, P = 4 (1/4)^3 (3/4) + (1/4)^4 = 13/256 = 5.1%, above the 2.5% tail; the same for 10 at the top.
    assert report.bootstrap_ci([10.0, 1.0, 4.0, 2.0]) == (1.0, 10.0)


def test_bootstrap_interval_by_hand():
    # Values 0, 0, 3: a resample's mean is k, the number of times it drew the 3, Binomial(3, 1/3): P(0) = 8/27,
    # P(1) = 12/27, P(2) = 6/27, P(3) = 1/27. Both tails hold more than 2.5% of rliable's resamples: the 2.5% and
    # 97.5% percentiles are 0 and 3.
    assert report.bootstrap_ci([0.0, 0.0, 3.0]) == (0.0, 3.0)
    # the same values everywhere: no spread
    assert report.bootstrap_ci([5.0, 5.0, 5.0, 5.0]) == (5.0, 5.0)


def test_bootstrap_interval_of_many_seeds_is_sampled_reproducibly():
    values = np.arange(10.0)  # 10^10 resamples: too many to enumerate
    low, high = report.bootstrap_ci(values)
    assert (low, high) == report.bootstrap_ci(values)
    # the IQM of 10 values is the mean of the middle 6 (4.5); a 95% interval of it over seeds lies well inside [0, 9]
    assert 1.5 < low < report.iqm(values) < high < 7.5


# ---------------------------------------------------------------------------------------------------------------------
# report.py: synthetic run folders
# ---------------------------------------------------------------------------------------------------------------------
def write_fake_run(folder, seed: int, eval_return: float, train_returns, sps: float) -> None:
    """What a finished run leaves: a run folder (TensorBoard episodes, summary.json) and the harness's run.json."""
    run_dir = os.path.join(folder, f"seed_{seed}", f"CartPole-v1__dqn__{seed}__1700000000")
    os.makedirs(run_dir)
    writer = SummaryWriter(run_dir)
    for step, value in enumerate(train_returns):
        writer.add_scalar("charts/episodic_return", value, (step + 1) * 10)
    writer.close()
    summary = dict(algo="dqn", env_id="CartPole-v1", seed=seed, eval_return_mean=eval_return, sps=sps, wall_time_s=60.0)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f)
    with open(os.path.join(folder, f"seed_{seed}", "run.json"), "w") as f:
        json.dump(dict(machine="test machine"), f)


def test_report_aggregates_seeds_as_computed_by_hand(tmp_path):
    row = Row(algo="dqn", env_id="CartPole-v1", budget=1000, seeds=(1, 2, 3, 4))  # seed 4 never ran
    folder = tmp_path / "runs" / "fake" / "dqn" / "CartPole-v1"
    for seed, eval_return in ((1, 100.0), (2, 100.0), (3, 400.0)):
        # 50 early episodes at 0, then 100 at 10 × seed: the last 100 average 10, 20, 30
        write_fake_run(folder, seed, eval_return, [0.0] * 50 + [10.0 * seed] * 100, sps=1000.0 * seed)
    records = report.read_row(str(tmp_path / "runs"), "fake", row)
    assert [record["curve_episodes"][-1] for record in records] == [150, 150, 150]  # the x axis of episode budgets
    numbers = report.aggregate(records)
    assert numbers["seeds"] == 3
    assert numbers["eval_mean"] == pytest.approx(200.0)
    assert numbers["eval_std"] == pytest.approx(np.sqrt((100**2 + 100**2 + 200**2) / 3))  # ddof 0
    assert numbers["train_mean"] == pytest.approx(20.0)
    assert numbers["train_std"] == pytest.approx(np.sqrt(200 / 3))
    assert numbers["iqm"] == pytest.approx(200.0)
    assert numbers["ci"] == (100.0, 400.0)  # the 0, 0, 3 case above, times 100 plus 100
    assert numbers["sps"] == pytest.approx(2000.0)

    path = report.write_report("fake", str(tmp_path / "runs"), str(tmp_path / "results"), rows=(row,))
    text = open(path).read()
    line = next(line for line in text.splitlines() if line.startswith("| dqn | CartPole-v1"))
    assert "3 of 4" in line and "200.0 ± 141.4" in line and "20.0 ± 8.2" in line and "200.0 [100.0, 400.0]" in line
    # CleanRL's anchor (488.69, last 100 training episodes) against our 20.0; the Zoo's (500, evaluation) against 200
    assert "| 488.69 [1]<br>500 [2] | -468.7 [1]<br>-300.0 [2] |" in line
    assert "M1: test machine" in text
    assert os.path.getsize(tmp_path / "results" / "fake" / "curves_CartPole-v1.png") > 0


def test_report_keeps_the_saved_seeds_of_runs_that_are_gone(tmp_path):
    """seeds.json carries each seed's numbers to the next report: a table survives the deletion of its raw runs, a run
    folder that is present wins over the saved seed, and a seed saved with other arguments is not used."""
    runs_dir, results_dir = str(tmp_path / "runs"), str(tmp_path / "results")
    row = Row(algo="dqn", env_id="CartPole-v1", budget=1000)
    folder = tmp_path / "runs" / "fake" / "dqn" / "CartPole-v1"
    for seed, eval_return in ((1, 100.0), (2, 300.0)):
        write_fake_run(folder, seed, eval_return, [10.0 * seed] * 20, sps=1000.0)
    path = report.write_report("fake", runs_dir, results_dir, rows=(row,))
    first = open(path).read()
    assert "| dqn | CartPole-v1 | 1000 steps | 2 of 3 | 200.0 ± 100.0 | 15.0 ± 5.0 |" in first
    curves = (tmp_path / "results" / "fake" / "curves_CartPole-v1.png").read_bytes()

    shutil.rmtree(tmp_path / "runs")
    assert open(report.write_report("fake", runs_dir, results_dir, rows=(row,))).read() == first
    assert (tmp_path / "results" / "fake" / "curves_CartPole-v1.png").read_bytes() == curves

    write_fake_run(folder, 1, 500.0, [50.0] * 20, sps=1000.0)  # seed 1 again, with other numbers: the run wins
    text = open(report.write_report("fake", runs_dir, results_dir, rows=(row,))).read()
    assert "| 2 of 3 | 400.0 ± 100.0 | 35.0 ± 15.0 |" in text

    # seed 2 was saved with other settings
    other = Row(algo="dqn", env_id="CartPole-v1", budget=1000, args=dict(learning_rate=1e-3))
    text = open(report.write_report("fake", runs_dir, results_dir, rows=(other,))).read()
    assert "| 1 of 3 | 500.0 ± 0.0 | 50.0 ± 0.0 |" in text


def test_report_shows_returns_below_10_to_two_decimals(tmp_path):
    """Returns in [0, 1] (Level-Based Foraging) keep their second decimal; returns of tens keep one."""
    rows = (
        Row(algo="qmix", env_id="Foraging-8x8-2p-3f-v3", budget=1000, seeds=(1, 2)),
        Row(algo="dqn", env_id="CartPole-v1", budget=1000, seeds=(1,)),
    )
    for seed, eval_return in ((1, 0.90), (2, 0.94)):
        write_fake_run(
            tmp_path / "runs" / "fake" / "qmix" / "Foraging-8x8-2p-3f-v3", seed, eval_return, [0.5] * 20, sps=1000.0
        )
    write_fake_run(tmp_path / "runs" / "fake" / "dqn" / "CartPole-v1", 1, 123.45, [10.0] * 20, sps=1000.0)
    text = open(report.write_report("fake", str(tmp_path / "runs"), str(tmp_path / "results"), rows=rows)).read()
    assert "| 2 of 2 | 0.92 ± 0.02 | 0.50 ± 0.00 | 0.92 [0.90, 0.94] |" in text
    assert "| 1 of 1 | 123.5 ± 0.0 | 10.0 ± 0.0 |" in text


def test_report_lists_rows_that_did_not_run(tmp_path):
    row = Row(algo="c51", env_id="Acrobot-v1", budget=500_000)
    path = report.write_report("fake", str(tmp_path / "runs"), str(tmp_path / "results"), rows=(row,))
    assert "| c51 | Acrobot-v1 | 500k steps | 0 of 3 | not run |" in open(path).read()


def test_report_page_opens_with_the_table_and_notes_the_anchors_below_it(tmp_path, monkeypatch):
    """The table comes right after the title; an anchor cell holds the number and its note's number, the note under
    the table its source and protocol; the suite's notes come after the table."""
    monkeypatch.setitem(report.NOTES, "fake", "THE RUN DIARY")
    row = Row(algo="dqn", env_id="CartPole-v1", budget=1000, seeds=(1,))
    write_fake_run(tmp_path / "runs" / "fake" / "dqn" / "CartPole-v1", 1, 500.0, [10.0] * 20, sps=1000.0)
    text = open(report.write_report("fake", str(tmp_path / "runs"), str(tmp_path / "results"), rows=(row,))).read()
    lines = [line for line in text.splitlines() if line]
    assert lines[0] == "# Benchmark suite `fake`" and lines[1].startswith("| algorithm | env |")
    assert "| IQM [95% CI] by rliable |" in lines[1]
    cells = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert cells[7:9] == ["488.69 [1]<br>500 [2]", "-478.7 [1]<br>+0.0 [2]"]
    notes = [line for line in lines if line[:3] in ("1. ", "2. ")]
    assert notes[0].startswith("1. 488.69, compared with our last 100 train: [CleanRL dqn.py docs](https://")
    assert notes[1].startswith("2. 500, compared with our final eval: [RL Baselines3 Zoo benchmark.md](https://")
    assert text.index("| dqn | CartPole-v1") < text.index("1. 488.69") < text.index("## Notes\n\nTHE RUN DIARY")


def fake_records(steps: int, episodes: bool = True) -> list:
    """Three seeds' records as seeds.json keeps them: a curve of 101 points rising to 100 over `steps` env steps."""
    grid = np.linspace(0, steps, report.CURVE_POINTS)
    records = []
    for seed in (1, 2, 3):
        record = dict(seed=seed, curve_steps=list(grid), curve_returns=list(np.linspace(0, 100, len(grid)) + seed))
        if episodes:
            record["curve_episodes"] = list(range(len(grid)))
        records.append(record)
    return records


def test_plot_gives_each_line_its_own_colour_and_names_the_anchors(tmp_path):
    """11 rows on CartPole (tab10 has 10 colours: the 11th was the 1st's blue): 11 colours; CleanRL's anchors of dqn
    and ppo dashed in their rows' colours and named by their notes' numbers; the planner's rows, whose budgets count
    episodes, in a panel over episodes."""
    algos = ("dqn", "c51", "qr_dqn", "rainbow", "ppo", "reinforce", "a2c", "a3c", "trpo")
    curves = [(Row(algo=algo, env_id="CartPole-v1", budget=80_000), fake_records(80_000)) for algo in algos]
    curves += [(Row(algo="mcts", env_id="CartPole-v1", budget=10, name=name), fake_records(5000)) for name in "ab"]
    numbers = report.number_anchors([row for row, _ in curves])
    drawn = report.plot_env("CartPole-v1", curves, str(tmp_path / "curves.png"), numbers)
    assert os.path.getsize(tmp_path / "curves.png") > 0
    solid = {line["label"]: line for line in drawn if not line["dashed"]}
    assert len(solid) == 11 and len({line["color"] for line in solid.values()}) == 11
    dashed = {line["label"]: line for line in drawn if line["dashed"]}
    assert set(dashed) == {
        f"dqn anchor [{numbers[report.anchors_of('dqn', 'CartPole-v1')[0]]}]: 488.69, CleanRL dqn.py docs",
        f"c51 anchor [{numbers[report.anchors_of('c51', 'CartPole-v1')[0]]}]: 481.2, CleanRL c51.py docs",
        f"ppo anchor [{numbers[report.anchors_of('ppo', 'CartPole-v1')[0]]}]: 490.04, CleanRL ppo.py docs",
    }
    ppo_anchor = next(line for label, line in dashed.items() if label.startswith("ppo"))
    assert ppo_anchor["color"] == solid["ppo (3 seeds)"]["color"]
    assert {solid[f"{label} (3 seeds)"]["xlabel"] for label in algos} == {"env steps"}
    assert solid["a (3 seeds)"]["xlabel"] == solid["b (3 seeds)"]["xlabel"] == "training episodes"
    # seeds saved before seeds.json kept an episode axis: still their own panel, its axis says what it counts
    old = [(Row(algo="q_learning", env_id="CliffWalking-v1", budget=500), fake_records(9000, episodes=False))]
    (line,) = report.plot_env("CliffWalking-v1", old, str(tmp_path / "old.png"))
    assert line["xlabel"] == "env steps (these seeds' records have no episode axis)"
    assert len(report.line_colors(30)) == len(set(report.line_colors(30))) == 30


def test_made_by_shows_the_commands_that_made_the_page(tmp_path):
    """report.py's line as it was called (its --runs-dir and --results-dir), and run.py's with --only the rows that ran
    and the same --runs-dir."""
    runs_dir, results_dir = str(tmp_path / "runs"), str(tmp_path / "results")
    folder = tmp_path / "runs" / "rainbow_ablation" / "rainbow_no_double" / "CartPole-v1"
    write_fake_run(folder, 1, 300.0, [10.0] * 20, sps=1000.0)
    line = ["--suite", "rainbow_ablation", "--runs-dir", runs_dir, "--results-dir", results_dir]
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "report.py"), *line], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    text = open(os.path.join(results_dir, "rainbow_ablation", "README.md")).read()
    made_by = text[text.index("## Made by") :].split("\n\n")[1].splitlines()
    assert made_by == [
        "    python benchmarks/run.py --suite rainbow_ablation --only rainbow_no_double --runs-dir " + runs_dir,
        "    python benchmarks/report.py " + " ".join(line),
    ]
    # a page of every row, made with the default folders
    quick = report.SUITES["quick"]
    ran = {row.label for row in quick}
    assert report.run_command("quick", quick, ran, report.Args.runs_dir) == "python benchmarks/run.py --suite quick"
    assert report.report_command(report.Args(suite="quick")) == "python benchmarks/report.py --suite quick"


# ---------------------------------------------------------------------------------------------------------------------
# run.py
# ---------------------------------------------------------------------------------------------------------------------
def test_every_suite_row_can_run():
    """Every row of every suite names a script, arguments it has and an env it can make (run.py checks this before
    running a suite, so a broken row would stop the whole benchmark)."""
    problems = {(name, row.label, row.env_id): run.check_row(row) for name, rows in SUITES.items() for row in rows}
    assert {key: problem for key, problem in problems.items() if problem} == {}


def test_show_prints_for_every_row_the_command_that_runs_it(capsys):
    """`run.py --show` prints, for every row of every suite, a command whose arguments are the row's own."""
    for suite, rows in SUITES.items():
        assert run.main(run.Args(suite=suite, show=True)) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == len(rows)
        for row, line in zip(rows, lines, strict=True):
            words = shlex.split(line)
            assert words[:2] == ["python", f"algos/{row.algo}.py"]
            module = load_algo(row.algo)
            parsed = tyro.cli(module.Args, args=words[2:])
            expected = module.Args(**{**run.algo_args(row, row.seeds[0], "runs"), "exp_name": row.label})
            assert parsed == expected, line
    # with --seeds, one line per seed asked for
    assert run.main(run.Args(suite="quick", only=("dqn",), seeds=(2, 3), show=True)) == 0
    assert [line.split("--seed ")[1].split()[0] for line in capsys.readouterr().out.splitlines()] == ["2", "3"]


def test_every_script_has_a_row_in_the_smoke_suite():
    """`benchmarks/run.py --suite smoke` runs every script once (the tests have their own smoke settings, in
    tests/helpers.py)."""
    assert sorted(row.algo for row in SUITES["smoke"]) == sorted(os.path.basename(p)[:-3] for p in ALGO_FILES)


def test_command_is_what_a_user_types():
    row = Row(algo="dqn", env_id="CartPole-v1", budget=500_000, args=dict(learning_rate=2.5e-4, anneal_lr=False))
    line = run.command(row, 2, "logs")
    assert line[1:] == [
        os.path.join("algos", "dqn.py"),
        *("--env-id", "CartPole-v1", "--seed", "2", "--total-timesteps", "500000", "--exp-name", "dqn"),
        *("--log-dir", "logs", "--learning-rate", "0.00025", "--no-anneal-lr"),
    ]
    assert "--total-episodes" in run.command(Row(algo="sarsa", env_id="CliffWalking-v1", budget=500), 1, "logs")


def test_bad_rows_fail_before_anything_runs(tmp_path, capsys):
    rows = (
        Row(algo="no_such_algo", env_id="CartPole-v1", budget=2000),  # dqn learns after its first 1000 steps
        Row(algo="dqn", env_id="NoSuchEnv-v0", budget=2000),
        Row(algo="dqn", env_id="CartPole-v1", budget=2000, args=dict(no_such_argument=1)),
        Row(algo="dqn", env_id="Pendulum-v1", budget=2000),
        SMOKE_ROWS["q_learning"],
    )
    with pytest.raises(SystemExit) as exit_info:
        run.run_suite("bad", rows, str(tmp_path))
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "algos/no_such_algo.py does not exist" in message
    assert "cannot make env 'NoSuchEnv-v0'" in message
    assert "has no argument no_such_argument" in message
    assert "needs a Discrete action space" in message
    assert "q_learning" not in message  # the good row is fine, but does not run either
    assert os.listdir(tmp_path) == []


def test_unknown_suite_row_and_env_are_rejected(capsys):
    for argv, mention in (
        (["--suite", "nosuchsuite"], "nosuchsuite"),
        (["--suite", "smoke", "--only", "nosuchrow"], "nosuchrow"),
        (["--suite", "quick", "--env-ids", "CartPole-v1", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            run.select_rows(run.tyro.cli(run.Args, args=argv))
        lines = capsys.readouterr().err.splitlines()
        assert exit_info.value.code == 2 and len(lines) == 1 and mention in lines[0]


def test_env_ids_select_the_rows_on_those_envs():
    rows = run.select_rows(run.Args(suite="tuned", only=("trpo",), env_ids=("LunarLanderContinuous-v3",)))
    assert [(row.algo, row.env_id) for row in rows] == [("trpo", "LunarLanderContinuous-v3")]
    rows = run.select_rows(run.Args(suite="quick", env_ids=("CartPole-v1", "Pendulum-v1")))
    expected = [row for row in SUITES["quick"] if row.env_id in ("CartPole-v1", "Pendulum-v1")]
    assert list(rows) == expected and {row.env_id for row in SUITES["quick"]} - {"CartPole-v1", "Pendulum-v1"}


def test_a_failing_run_is_reported_and_the_status_is_nonzero(tmp_path, monkeypatch, capsys):
    # the scripts' processes find the NaN-reward env of tests/fake_envs.py on their path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([REPO, os.path.join(REPO, "tests")]))
    nan_row = Row(
        algo="sarsa",
        env_id="fake_envs:NanRewardCliffWalking-v1",
        budget=50,
        seeds=(1,),
        args=dict(eval_episodes=2),
        name="sarsa_nan",
    )
    good_row = SMOKE_ROWS["q_learning"]
    outcomes = run.run_suite("failing", (nan_row, good_row), str(tmp_path), workers=2)
    assert run.report_failures(outcomes) == 1
    err = capsys.readouterr().err
    assert "FAILED sarsa_nan fake_envs:NanRewardCliffWalking-v1 seed 1" in err and "nan" in err.lower()
    assert os.path.join(str(tmp_path), "failing", "sarsa_nan") in err  # the log's path
    assert run.summary_path(os.path.join(str(tmp_path), "failing", "q_learning", "CliffWalking-v1", "seed_1"))
    record = json.load(
        open(
            os.path.join(
                str(tmp_path), "failing", "sarsa_nan", "fake_envs:NanRewardCliffWalking-v1", "seed_1", "run.json"
            )
        )
    )
    assert record["returncode"] == 1 and record["command"].startswith("python algos/sarsa.py")


def test_a_second_harness_on_the_same_suite_is_refused(tmp_path, capsys):
    """Two run.py on one suite would each take the other's unfinished runs for crashed ones and remove them."""
    os.makedirs(tmp_path / "smoke")
    with open(tmp_path / "smoke" / ".lock", "w") as held:  # what a running run.py holds
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SystemExit) as exit_info:
            run.run_suite("smoke", (SMOKE_ROWS["q_learning"],), str(tmp_path))
    assert exit_info.value.code == 2
    assert "another run.py is running suite smoke" in capsys.readouterr().err
    assert os.listdir(tmp_path / "smoke") == [".lock"]  # nothing ran
    # once the lock is free, the suite runs
    assert [
        outcome.returncode for _, outcome in run.run_suite("smoke", (SMOKE_ROWS["q_learning"],), str(tmp_path))
    ] == [0]


def running(pattern: str) -> bool:
    """Whether a process whose command line matches `pattern` is running (`--` ends pgrep's options: a pattern that
    starts with "--" is a pattern, not an option)."""
    result = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr  # 0: found, 1: none; 2 and 3: pgrep could not search
    return result.returncode == 0


def test_resume_after_a_kill(tmp_path):
    """Kill the benchmark while its second run is going: the finished run is kept, the killed one leaves no process and
    no summary behind, and the next call runs only the killed one, from scratch."""
    argv = [sys.executable, os.path.join(REPO, "benchmarks", "run.py"), "--suite", "smoke", "--only", "reinforce"]
    argv += ["a2c", "--workers", "1", "--runs-dir", str(tmp_path / "runs")]
    finished = os.path.join(str(tmp_path), "runs", "smoke", "reinforce", "CartPole-v1", "seed_1")
    killed = os.path.join(str(tmp_path), "runs", "smoke", "a2c", "CartPole-v1", "seed_1")
    killed_run = f"--log-dir {killed}"  # on the command line of the killed run's process, and of no other
    with open(tmp_path / "stderr.log", "w") as stderr:
        harness = subprocess.Popen(argv, cwd=REPO, stderr=stderr)

    def killed_run_started() -> bool:
        assert harness.poll() is None, "the benchmark ended before its second run had started"
        return bool(run_dirs(killed))  # the script has made its run folder: its process is there

    try:
        wait_until(killed_run_started, "the second run to make its run folder")
        assert running(killed_run)  # the check below can see a run that is there
        harness.send_signal(signal.SIGTERM)
        assert harness.wait(timeout=PATIENCE_S) == 130
    finally:  # a failed assertion leaves no benchmark running (SIGTERM: the harness stops its runs)
        if harness.poll() is None:
            harness.send_signal(signal.SIGTERM)
            harness.wait(timeout=60)
    assert "interrupted" in (tmp_path / "stderr.log").read_text()
    assert run.summary_path(killed) is None  # stopped mid-way
    assert not running(killed_run)  # nothing of the killed run is left running
    assert run.summary_path(finished)
    stale = run_dirs(killed)
    kept = run.summary_path(finished)
    kept_mtime = os.path.getmtime(kept)

    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=PATIENCE_S)
    assert again.returncode == 0, again.stderr
    assert run.summary_path(finished) == kept and os.path.getmtime(kept) == kept_mtime  # not run again
    assert run.summary_path(killed) is not None  # re-run ...
    assert stale and not set(stale) & set(run_dirs(killed))  # ... from scratch: what the killed run left was removed


def test_a_stopped_benchmark_starts_no_more_runs(tmp_path):
    """Once the harness has stopped its runs (Ctrl-C, SIGTERM), a run that a worker thread was about to start does not
    start: it would otherwise run to its end, unseen, while the benchmark waits for it."""
    processes = run.Processes()
    processes.stop_all()
    line = [sys.executable, "-c", "open('ran', 'w')"]
    outcome = run.execute(line, str(tmp_path), time_limit_s=PATIENCE_S, cwd=str(tmp_path), processes=processes)
    assert outcome.returncode != 0 and "not started" in outcome.error
    assert not os.path.exists(tmp_path / "ran")


def test_ray_backend_runs_the_smoke_suites_cheapest_rows(tmp_path):
    # no importorskip: ray is in requirements-cluster.txt, which the README's test command installs, and a test skipped
    # for a missing dependency would hide a broken install
    rows = (SMOKE_ROWS["q_learning"], SMOKE_ROWS["sarsa"])  # the two cheapest: a few seconds each
    outcomes = run.run_suite("smoke", rows, str(tmp_path), backend="ray")
    assert [outcome.returncode for _, outcome in outcomes] == [0, 0]
    for row in rows:
        folder = os.path.join(str(tmp_path), "smoke", row.algo, row.env_id, "seed_1")
        summary = json.load(open(run.summary_path(folder)))
        assert summary["algo"] == row.algo and summary["total_timesteps"] > 0
        assert json.load(open(os.path.join(folder, "run.json")))["returncode"] == 0
        assert os.path.isfile(os.path.join(folder, "output.log"))


def test_a_killed_run_with_a_snapshot_continues_from_it(tmp_path):
    """A run of a suite that stopped after a snapshot (as a kill leaves it) is continued with --resume in its own run
    folder by the next call, not re-run from scratch."""
    row = Row(
        algo="sac", env_id="Pendulum-v1", budget=600, seeds=(1,), args=dict(learning_starts=200, snapshot_frequency=300)
    )
    (folder,) = [r.folder for r in run.plan("resumed", [row], str(tmp_path))]
    module = load_algo("sac")
    with pytest.MonkeyPatch.context() as patch:
        stop_after_first_snapshot(module, patch)
        with pytest.raises(Killed):
            module.train(module.Args(**run.algo_args(row, 1, folder)))
    (stopped,) = run_dirs(folder)

    outcomes = run.run_suite("resumed", [row], str(tmp_path))
    assert [outcome.returncode for _, outcome in outcomes] == [0]
    assert run_dirs(folder) == [stopped] and run.summary_path(folder) == os.path.join(stopped, "summary.json")
    with open(os.path.join(folder, "run.json")) as f:
        assert f"--resume {stopped}" in json.load(f)["command"]
    with open(os.path.join(folder, "output.log")) as f:
        assert "resumed" in f.read()


def test_ray_retries_a_run_whose_worker_died_and_it_continues_from_its_snapshot(tmp_path):
    """Kill the Ray worker process of a running task after the run's first snapshot: the run's own process dies with
    it (no orphan beside the retry), Ray retries the task, and the retry continues the run from the snapshot."""
    row = Row(
        algo="sac",
        env_id="Pendulum-v1",
        budget=3000,
        seeds=(1,),
        args=dict(learning_starts=200, snapshot_frequency=500),
    )
    (folder,) = [r.folder for r in run.plan("ray_retry", [row], str(tmp_path))]
    outcomes = []
    harness = threading.Thread(target=lambda: outcomes.extend(run.run_suite("ray_retry", [row], str(tmp_path), "ray")))
    harness.start()
    try:
        wait_until(lambda: glob.glob(os.path.join(folder, "*", "snapshot.pt")), "the run's first snapshot")
        trainer = int(
            subprocess.run(["pgrep", "-f", "--", f"--log-dir {folder}"], capture_output=True, text=True).stdout.split()[
                0
            ]
        )
        with open(f"/proc/{trainer}/stat") as f:
            worker = int(f.read().rsplit(")", 1)[1].split()[1])  # the parent: the Ray worker running the task
        os.kill(worker, signal.SIGKILL)
        wait_until(
            lambda: not os.path.exists(f"/proc/{trainer}") or "zombie" in open(f"/proc/{trainer}/status").read(),
            "the run's process to die with its worker",
            timeout_s=30,  # at once (the parent-death signal); an orphan would go on until its budget ends
        )
        assert run.summary_path(folder) is None  # killed mid-run, not finished
    finally:
        harness.join(timeout=PATIENCE_S)
    assert [outcome.returncode for _, outcome in outcomes] == [0]
    (run_dir,) = run_dirs(folder)  # continued in its own folder
    assert run.summary_path(folder) == os.path.join(run_dir, "summary.json")
    with open(os.path.join(folder, "output.log")) as f:
        assert "resumed" in f.read()
    assert not running(f"--log-dir {folder}")


def test_how_often_a_row_writes_snapshots_does_not_change_its_settings():
    # the seeds a report keeps are matched on the row's settings: a snapshot frequency changes nothing a run computes
    plain = Row(algo="sac", env_id="Pendulum-v1", budget=600, args=dict(learning_starts=200))
    snapshots = Row(
        algo="sac", env_id="Pendulum-v1", budget=600, args=dict(learning_starts=200, snapshot_frequency=300)
    )
    assert report.row_settings(plain) == report.row_settings(snapshots) == {"budget": 600, "learning_starts": 200}


# ---------------------------------------------------------------------------------------------------------------------
# gpu_sps.py
# ---------------------------------------------------------------------------------------------------------------------
def test_gpu_sps_has_a_row_for_every_script_with_a_gpu_path():
    with_cuda = {
        os.path.basename(path)[:-3]
        for path in ALGO_FILES
        if "cuda" in {field.name for field in dataclasses.fields(load_algo(os.path.basename(path)[:-3]).Args)}
    }
    assert {row.algo for row in gpu_sps.ROWS} == with_cuda
    for row in gpu_sps.ROWS:  # each runs as it stands: the script's own checks accept it
        assert run.check_row(row) is None, row


def test_gpu_sps_measures_the_cpu_column_and_writes_its_table(tmp_path):
    args = gpu_sps.Args(only=("dqn",), cpu_only=True, results_dir=str(tmp_path))
    assert gpu_sps.main(args) == 0
    with open(tmp_path / "results.json") as f:
        (result,) = json.load(f)["rows"]
    assert result["algo"] == "dqn" and result["cpu"] > 0 and "gpu" not in result
    with open(tmp_path / "README.md") as f:
        table = f.read()
    assert f"| dqn | CartPole-v1 | 3000 timesteps | {result['cpu']:.0f} | – | – |" in table


def test_gpu_sps_without_a_gpu_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gpu_sps, "gpu_name", lambda: None)  # as on a machine without one, whatever this one has
    with pytest.raises(SystemExit) as exit_info:
        gpu_sps.main(gpu_sps.Args(results_dir=str(tmp_path)))
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and "--cpu-only" in lines[0]
    assert not os.listdir(tmp_path)
