"""Time to solve, on this machine: wall-clock seconds from launching a run until its training episodes reach the env's
threshold, for our scripts against Stable-Baselines3 with the RL Zoo's tuned settings and against CleanRL at its
defaults, the three taking turns.

    python benchmarks/solve.py --peer-python ../peers/venv/bin/python --cleanrl-dir ../peers/cleanrl
    python benchmarks/solve.py --only dqn --env-id CartPole-v1 --seeds 1 ...   # some races, some seeds
    python benchmarks/solve.py --page                                          # the results page from what ran

The peers are not part of this repository: install them beside it (benchmarks/SPEED.md says how). Protocol, the same
for the three:
- Solved: the mean undiscounted return of the last `WINDOW` finished training episodes reaches the env's threshold
  (`THRESHOLDS`: gymnasium's reward_threshold where the env has one, -200 on Pendulum-v1). The env's own rewards
  count, before any normalization of the implementation's; the episodes are those of the exploring policy the
  implementation trains with. The probe (benchmarks/solve_probe/sitecustomize.py) wraps `gymnasium.make` in the
  run's process, so the same code watches every implementation, and ends the run the moment it solves.
- Time: from just before the process starts (so Python's start-up and imports count) to the end of the solving
  episode. A run that ends, or passes the race's time limit, without solving counts as not solved.
- Each command is what a user types: ours a suite row (`run.py --show` prints it), the Zoo's `rl_zoo3.train` with
  its hyperparameter file and periodic evaluation off (`--eval-freq -1`), CleanRL's script at its defaults.
- One run at a time with nothing else running, one thread each (OMP_NUM_THREADS=1, as run.py's runs), the three
  implementations taking turns within a seed, their order rotating from seed to seed.

What it writes: one line per run to `{results_dir}/runs.jsonl` (kept: a run already there is skipped; a run that
crashed is reported, not kept, and makes the exit status 1), the runs' folders under `{runs_dir}/solve/`, and with
`--page` the page `{results_dir}/README.md`.
"""

import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import run  # noqa: E402
from benchmarks.suites import TUNED, Row  # noqa: E402

PROBE = os.path.join(REPO, "benchmarks", "solve_probe")
WINDOW = 20  # finished training episodes averaged
THRESHOLDS = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "Pendulum-v1": -200.0,
    "LunarLander-v3": 200.0,
    "LunarLanderContinuous-v3": 200.0,
}
IMPLEMENTATIONS = ("ours", "sb3_zoo", "cleanrl")


@dataclass(frozen=True, kw_only=True)
class Race:
    """One algorithm on one env: our row against the peers' runs of the same algorithm."""

    algo: str  # the algorithm, by the Zoo's name (dqn, ppo, a2c, sac, td3)
    ours: Row  # our script and its settings
    cleanrl: str = ""  # CleanRL's script (cleanrl/<name>.py) run at its defaults; "" where CleanRL has none
    time_limit_s: float = 900.0

    @property
    def env_id(self) -> str:
        return self.ours.env_id

    @property
    def name(self) -> str:
        return f"{self.algo} {self.env_id}"


def ours(algo: str, env_id: str, budget: int, **args) -> Row:
    return Row(algo=algo, env_id=env_id, budget=budget, args=args)


def tuned(algo: str, env_id: str) -> Row:
    """The tuned suite's row of `algo` on `env_id`: the settings a user copies for that env."""
    return next(row for row in TUNED if row.algo == algo and row.env_id == env_id)


RACES = (
    Race(algo="dqn", ours=ours("dqn", "CartPole-v1", 80_000), cleanrl="dqn"),
    Race(algo="ppo", ours=ours("ppo", "CartPole-v1", 100_000), cleanrl="ppo"),
    Race(algo="a2c", ours=ours("a2c", "CartPole-v1", 300_000)),
    Race(algo="dqn", ours=ours("dqn", "Acrobot-v1", 100_000), cleanrl="dqn"),
    Race(algo="ppo", ours=ours("ppo", "Acrobot-v1", 200_000), cleanrl="ppo"),
    Race(algo="a2c", ours=ours("a2c", "Acrobot-v1", 300_000)),
    Race(algo="ppo", ours=ours("ppo_continuous", "Pendulum-v1", 200_000), cleanrl="ppo_continuous_action"),
    Race(algo="a2c", ours=tuned("a2c", "Pendulum-v1"), time_limit_s=600.0),
    Race(algo="sac", ours=ours("sac", "Pendulum-v1", 20_000), cleanrl="sac_continuous_action"),
    Race(algo="td3", ours=ours("td3", "Pendulum-v1", 20_000), cleanrl="td3_continuous_action"),
    Race(algo="dqn", ours=tuned("dqn", "LunarLander-v3"), cleanrl="dqn"),
    Race(algo="ppo", ours=tuned("ppo", "LunarLander-v3"), cleanrl="ppo"),
    Race(algo="a2c", ours=tuned("a2c", "LunarLander-v3")),
    Race(
        algo="ppo",
        ours=tuned("ppo_continuous", "LunarLanderContinuous-v3"),
        cleanrl="ppo_continuous_action",
        time_limit_s=1200.0,  # room for CleanRL's 1M steps at its defaults (one env, 10 epochs per 2048 steps)
    ),
)


@dataclass
class Args:
    peer_python: str = ""
    """the Python of a virtual environment with stable-baselines3 and rl_zoo3 (and CleanRL's requirements)"""
    cleanrl_dir: str = ""
    """a folder holding CleanRL's scripts (dqn.py, ppo.py, ...) and its cleanrl_utils package"""
    only: tuple[str, ...] = ()
    """run only the races of these algorithms (the Zoo's names: dqn, ppo, a2c, sac, td3)"""
    env_id: tuple[str, ...] = ()
    """run only the races on these envs"""
    implementations: tuple[str, ...] = IMPLEMENTATIONS
    """run only these implementations (ours, sb3_zoo, cleanrl)"""
    seeds: tuple[int, ...] = (1, 2, 3)
    """the seeds each implementation runs"""
    runs_dir: str = os.path.join(REPO, "benchmarks", "runs")
    """parent of the runs' folders"""
    results_dir: str = os.path.join(REPO, "benchmarks", "results", "solve")
    """where runs.jsonl and the page go"""
    page: bool = False
    """write the results page from runs.jsonl and run nothing"""


@dataclass
class Result:
    race: str
    implementation: str
    seed: int
    command: str
    solved: bool
    seconds: float | None  # launch to the solving episode's end; None when not solved
    steps: int  # env steps of the training envs until then (or until the run ended)
    episodes: int
    window_mean: float | None
    wall_s: float  # the whole process
    error: str = ""
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d"))


def fail(message: str, status: int = 2):
    print(f"solve.py: {message}", file=sys.stderr)
    raise SystemExit(status)


def command(race: Race, implementation: str, seed: int, folder: str, args: Args) -> tuple[list, str]:
    """The command line of one run and the folder it runs in."""
    if implementation == "ours":
        return run.command(race.ours, seed, folder), REPO
    if implementation == "sb3_zoo":
        zoo = ["-m", "rl_zoo3.train", "--algo", race.algo, "--env", race.env_id, "--seed", str(seed)]
        return [args.peer_python, *zoo, "--eval-freq", "-1", "--log-folder", folder], folder
    script = os.path.join(args.cleanrl_dir, f"{race.cleanrl}.py")
    return [args.peer_python, script, "--env-id", race.env_id, "--seed", str(seed)], folder


def shown(race: Race, implementation: str, seed: int) -> str:
    """The command as a user types it, without this machine's paths."""
    if implementation == "ours":
        return run.user_command(race.ours, seed)
    if implementation == "sb3_zoo":
        return f"python -m rl_zoo3.train --algo {race.algo} --env {race.env_id} --seed {seed} --eval-freq -1"
    return f"python cleanrl/{race.cleanrl}.py --env-id {race.env_id} --seed {seed}"


def probed(env: dict, probe_file: str, threshold: float, window: int) -> dict:
    """A process environment with the probe loaded at start-up, watching for `threshold` over `window` episodes."""
    python_path = os.pathsep.join(p for p in (PROBE, env.get("PYTHONPATH", "")) if p)
    return {
        **env,
        "PYTHONPATH": python_path,
        "SOLVE_PROBE_FILE": probe_file,
        "SOLVE_THRESHOLD": str(threshold),
        "SOLVE_WINDOW": str(window),
    }


def race_once(race: Race, implementation: str, seed: int, args: Args) -> Result:
    """One run under the probe: it ends when the run solves, ends or passes the race's time limit."""
    folder = os.path.join(args.runs_dir, "solve", implementation, race.name.replace(" ", "-"), f"seed_{seed}")
    os.makedirs(folder, exist_ok=True)
    probe_file = os.path.join(folder, "probe.json")
    if os.path.exists(probe_file):
        os.remove(probe_file)
    line, cwd = command(race, implementation, seed, folder, args)
    env = probed(run.run_env(), probe_file, THRESHOLDS[race.env_id], WINDOW)
    launched = time.time()
    outcome = run.execute(line, folder, race.time_limit_s, cwd, env=env)
    wall_s = time.time() - launched
    probe = {}
    if os.path.exists(probe_file):
        with open(probe_file) as f:
            probe = json.load(f)
    solved = bool(probe.get("solved"))
    timed_out = wall_s >= race.time_limit_s  # not solved in time: a result; a crash is not
    error = "" if solved or outcome.returncode == 0 or timed_out else outcome.error
    return Result(
        race=race.name,
        implementation=implementation,
        seed=seed,
        command=shown(race, implementation, seed),
        solved=solved,
        seconds=round(probe["time"] - launched, 2) if solved else None,
        steps=probe.get("steps", 0),
        episodes=probe.get("episodes", 0),
        window_mean=probe.get("window_mean"),
        wall_s=round(wall_s, 2),
        error=error or ("" if probe else "the probe reported nothing"),
    )


def load(path: str) -> list:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [Result(**json.loads(line)) for line in f if line.strip()]


def entrants(race: Race, args: Args) -> list:
    return [name for name in args.implementations if name != "cleanrl" or race.cleanrl]


def check(args: Args, races: list) -> None:
    unknown = set(args.implementations) - set(IMPLEMENTATIONS)
    if unknown:
        fail(f"--implementations: unknown {sorted(unknown)}; choose from {', '.join(IMPLEMENTATIONS)}")
    if not races:
        fail("no race matches --only and --env-id")
    peers = {name for race in races for name in entrants(race, args)} - {"ours"}
    if peers and not (args.peer_python and os.access(args.peer_python, os.X_OK)):
        fail("--peer-python: give the Python of a virtual environment with stable-baselines3 and rl_zoo3")
    if "cleanrl" in peers and not os.path.exists(os.path.join(args.cleanrl_dir, "cleanrl_utils")):
        fail("--cleanrl-dir: give a folder with CleanRL's scripts and its cleanrl_utils package")


def main(args: Args) -> int:
    path = os.path.join(args.results_dir, "runs.jsonl")
    if args.page:
        print(write_page(load(path), args.results_dir))
        return 0
    races = [
        r for r in RACES if (not args.only or r.algo in args.only) and (not args.env_id or r.env_id in args.env_id)
    ]
    check(args, races)
    done = {(r.race, r.implementation, r.seed) for r in load(path)}
    os.makedirs(args.results_dir, exist_ok=True)
    failed = 0
    for race in races:
        names = entrants(race, args)
        for seed in args.seeds:
            turn = (seed - 1) % len(names)  # by the seed, so that a call with some of the seeds keeps the rotation
            order = names[turn:] + names[:turn]
            for implementation in order:
                if (race.name, implementation, seed) in done:
                    continue
                result = race_once(race, implementation, seed, args)
                if result.error:  # a run that crashed is no result: not kept, so that the next call runs it again
                    failed += 1
                    print(f"{race.name} {implementation} seed {seed}: failed: {result.error}", file=sys.stderr)
                    continue
                with open(path, "a") as f:
                    f.write(json.dumps(asdict(result)) + "\n")
                verdict = f"solved in {result.seconds:.1f} s" if result.solved else "not solved"
                print(f"{race.name} {implementation} seed {seed}: {verdict} ({result.steps} steps)", flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------------------------
# The results page
# ---------------------------------------------------------------------------------------------------------------------
LABELS = {"ours": "ours", "sb3_zoo": "SB3 + RL Zoo", "cleanrl": "CleanRL"}


def cell(results: list) -> str:
    """Each seed's seconds to solve (— where it did not), then the median over seeds."""
    if not results:
        return ""
    times = [f"{r.seconds:.0f}" if r.solved else "—" for r in sorted(results, key=lambda r: r.seed)]
    solved = [r for r in results if r.solved]
    median = f"**{statistics.median(r.seconds for r in solved):.0f} s**" if len(solved) == len(results) else "n/a"
    return f"{median} ({', '.join(times)}; {len(solved)}/{len(results)})"


def speedup(ours_results: list, peer_results: list) -> str:
    """The peer's median time over ours where both solved on every seed; where only ours did, how often the peer did."""
    if not ours_results or not peer_results:
        return ""
    if not all(r.solved for r in ours_results):
        return "n/a"
    ours_median = statistics.median(r.seconds for r in ours_results)
    if not all(r.solved for r in peer_results):  # within its budget or the time limit: no time to compare
        return f"the peer solved {sum(r.solved for r in peer_results)}/{len(peer_results)}"
    return f"{statistics.median(r.seconds for r in peer_results) / ours_median:.2f}×"


def write_page(results: list, results_dir: str) -> str:
    by = {}
    for r in results:
        by.setdefault((r.race, r.implementation), []).append(r)
    lines = [
        "# Time to solve",
        "",
        "Wall-clock seconds from launching a run to the end of the training episode with which the mean return of the"
        f" last {WINDOW} training episodes reaches the threshold, on this project's reference machine (2 CPU cores,"
        " one run at a time, one thread). Each cell: the median over seeds (where every seed solved), each seed's"
        " time, and how many seeds solved. Speedup: the peer's median time over ours. Made by"
        " `python benchmarks/solve.py --peer-python ... --cleanrl-dir ...` (its docstring gives the protocol;"
        " benchmarks/SPEED.md how the peers were installed).",
        "",
        "| algo | env | threshold | ours | SB3 + RL Zoo | CleanRL | speedup over SB3 + Zoo | speedup over CleanRL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for race in RACES:
        row = {name: by.get((race.name, name), []) for name in IMPLEMENTATIONS}
        if not any(row.values()):
            continue
        cells = [cell(row[name]) if row[name] or name != "cleanrl" or race.cleanrl else "—" for name in IMPLEMENTATIONS]
        lines.append(
            f"| {race.algo} | {race.env_id} | {THRESHOLDS[race.env_id]:g} | "
            + " | ".join(cells)
            + f" | {speedup(row['ours'], row['sb3_zoo'])} | {speedup(row['ours'], row['cleanrl'])} |"
        )
    lines += ["", "## Commands", ""]
    for race in RACES:
        for name in IMPLEMENTATIONS:
            runs = sorted(by.get((race.name, name), []), key=lambda r: r.seed)
            if runs:
                lines.append(f"- {race.name}, {LABELS[name]}: `{runs[0].command}`")
    dates = sorted({r.date for r in results})
    if dates:
        lines += ["", f"Measured on {', '.join(dates)}."]
    text = "\n".join(lines) + "\n"
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "README.md"), "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
