"""Tables and learning curves from the run folders of a benchmark suite (benchmarks/run.py).

    python benchmarks/report.py --suite quick

writes `benchmarks/results/{suite}/README.md` and one learning-curve PNG per env beside it. For each row of the suite
(algorithm, env): the budget and seeds; our final evaluation (`summary.json` `eval_return_mean`: greedy or
deterministic episodes of the final policy), mean ± standard deviation over seeds; our mean of the last 100 training
episodes (CleanRL's protocol), mean ± standard deviation over seeds; the interquartile mean (IQM) of the final
evaluation over seeds with a 95% bootstrap confidence interval (as rliable computes them); the published anchors with
their protocol, and our number of the same protocol minus the anchor; steps per second and wall time.

Standard deviations are over seeds, with numpy's default ddof=0 (as CleanRL's tables). The IQM is the mean of the middle
half of the seeds' values (`floor(n/4)` cut from each end, as scipy.stats.trim_mean(values, 0.25)). Its interval takes
the 2.5% and 97.5% quantiles (inverse of the empirical distribution function) of the IQM over resamples of the seeds
with replacement: all n^n resamples when that is at most 50,000 (up to 6 seeds; exact, so the same every time), else
20,000 random ones with a fixed seed.

Beside the README, `seeds.json` keeps each seed's record: its final evaluation, last-100 training mean, SPS, wall time,
machine, and its learning curve at 101 points. The raw runs are not committed; with their records, a report made later
(or on another machine) keeps the seeds that ran before, and a seed whose run folder is present is read afresh from it.
"""

import itertools
import json
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.suites import EPISODE_BUDGET, NOTES, SUITES, TRAIN, anchors_of  # noqa: E402

LAST_EPISODES = 100  # CleanRL's protocol: mean of the last 100 training episodes
EXACT_BOOTSTRAP_LIMIT = 50_000
BOOTSTRAP_SAMPLES = 20_000
CURVE_POINTS = 101  # points of each seed's learning curve kept in seeds.json
SEEDS_FILE = "seeds.json"


@dataclass
class Args:
    suite: str
    """the suite whose runs to report (a name in benchmarks/suites.py)"""
    runs_dir: str = os.path.join(REPO, "benchmarks", "runs")
    """parent folder of the suites' run folders (as given to run.py)"""
    results_dir: str = os.path.join(REPO, "benchmarks", "results")
    """the report goes to `{results_dir}/{suite}/`"""


# ---------------------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------------------
def iqm(values) -> float:
    """Interquartile mean: the mean after cutting floor(n/4) values from each end of the sorted values."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    cut = len(values) // 4
    return float(values[cut : len(values) - cut].mean())


def quantile(samples: np.ndarray, q: float) -> float:
    """The q-quantile of equally weighted samples: the smallest value whose empirical CDF reaches q."""
    return float(np.quantile(samples, q, method="inverted_cdf"))


def bootstrap_ci(values, statistic=iqm, level: float = 0.95) -> tuple:
    """A percentile bootstrap interval of `statistic` over resamples of `values` with replacement."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n**n <= EXACT_BOOTSTRAP_LIMIT:
        resamples = (values[list(index)] for index in itertools.product(range(n), repeat=n))
    else:
        rng = np.random.default_rng(0)
        resamples = (values[rng.integers(0, n, n)] for _ in range(BOOTSTRAP_SAMPLES))
    stats = np.array([statistic(sample) for sample in resamples])
    tail = (1 - level) / 2
    return quantile(stats, tail), quantile(stats, 1 - tail)


# ---------------------------------------------------------------------------------------------------------------------
# Reading run folders
# ---------------------------------------------------------------------------------------------------------------------
def read_scalars(run_dir: str, tag: str) -> list:
    """(step, value) pairs of one TensorBoard scalar tag in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    accumulator.Reload()
    if tag not in accumulator.Tags()["scalars"]:
        return []
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def smoothed_curve(steps: np.ndarray, returns: np.ndarray, points: int = CURVE_POINTS) -> tuple:
    """A run's training return (the mean of its last 10 episodes) at `points` steps from 0 to its last episode's step;
    None where no episode has finished yet."""
    if len(steps) == 0:
        return [], []
    smooth = np.array([returns[max(0, i - 9) : i + 1].mean() for i in range(len(returns))])
    grid = np.linspace(0, steps[-1], points)
    index = np.searchsorted(steps, grid, side="right") - 1
    values = [float(smooth[i]) if i >= 0 else None for i in index]
    return [float(step) for step in grid], values


def read_run(seed_folder: str) -> dict | None:
    """The record of a finished run under `{...}/seed_{seed}/`: the numbers the report needs from its summary.json,
    the harness's run.json and its training episodes; None if it has not finished."""
    for entry in sorted(os.listdir(seed_folder)):
        run_dir = os.path.join(seed_folder, entry)
        if os.path.isfile(os.path.join(run_dir, "summary.json")):
            with open(os.path.join(run_dir, "summary.json")) as f:
                summary = json.load(f)
            machine = "not recorded"
            if os.path.isfile(os.path.join(seed_folder, "run.json")):
                with open(os.path.join(seed_folder, "run.json")) as f:
                    machine = json.load(f).get("machine", machine)
            episodes = np.array(read_scalars(run_dir, "charts/episodic_return"), dtype=np.float64).reshape(-1, 2)
            steps, returns = episodes[:, 0], episodes[:, 1]
            curve_steps, curve_returns = smoothed_curve(steps, returns)
            return dict(
                seed=summary["seed"],
                eval_return_mean=summary["eval_return_mean"],
                last_100_train=float(returns[-LAST_EPISODES:].mean()) if len(returns) else None,
                sps=summary["sps"],
                wall_time_s=summary["wall_time_s"],
                machine=machine,
                curve_steps=curve_steps,
                curve_returns=curve_returns,
            )
    return None


def read_row(runs_dir: str, suite: str, row) -> list:
    """The records of one suite row's finished runs, one per seed that finished."""
    folder = os.path.join(runs_dir, suite, row.label, row.env_id.replace("/", "-"))
    runs = []
    for seed in row.seeds:
        seed_folder = os.path.join(folder, f"seed_{seed}")
        if os.path.isdir(seed_folder) and (run := read_run(seed_folder)) is not None:
            runs.append(run)
    return runs


def read_saved(out: str) -> dict:
    """The seed records of an earlier report (`{out}/seeds.json`), by (row label, env id, seed)."""
    path = os.path.join(out, SEEDS_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return {(record["label"], record["env_id"], record["seed"]): record for record in json.load(f)}


def row_settings(row) -> dict:
    """What a row runs beyond its script, env and seed: its budget and arguments (as they read back from JSON)."""
    return json.loads(json.dumps(dict(budget=row.budget, **row.args)))


def row_records(runs_dir: str, suite: str, row, saved: dict) -> list:
    """One row's seed records: from its run folders, and, for a seed whose run folder is not here, from the earlier
    report's seeds.json if that seed ran with the row's present budget and arguments."""
    settings = row_settings(row)
    on_disk = {record["seed"]: record for record in read_row(runs_dir, suite, row)}
    records = []
    for seed in row.seeds:
        record = on_disk.get(seed)
        if record is None and saved.get((row.label, row.env_id, seed), {}).get("settings") == settings:
            record = saved[(row.label, row.env_id, seed)]
        if record is not None:
            records.append({"label": row.label, "env_id": row.env_id, "settings": settings, **record})
    return records


# ---------------------------------------------------------------------------------------------------------------------
# Aggregation over seeds
# ---------------------------------------------------------------------------------------------------------------------
def aggregate(runs: list) -> dict:
    """One row's numbers over its seeds' records."""
    evals = np.array([run["eval_return_mean"] for run in runs], dtype=np.float64)
    last = np.array([np.nan if run["last_100_train"] is None else run["last_100_train"] for run in runs])
    low, high = bootstrap_ci(evals)
    return dict(
        seeds=len(runs),
        eval_mean=float(evals.mean()),
        eval_std=float(evals.std()),
        train_mean=float(last.mean()),
        train_std=float(last.std()),
        iqm=iqm(evals),
        ci=(low, high),
        sps=float(np.mean([run["sps"] for run in runs])),
        wall_time_s=float(np.mean([run["wall_time_s"] for run in runs])),
        machines=sorted({run["machine"] for run in runs}),
    )


def learning_curve(runs: list, points: int = CURVE_POINTS) -> tuple:
    """Mean and standard deviation over seeds of the runs' smoothed training returns (see smoothed_curve), on a common
    grid of steps up to the longest run's last episode; NaN where no run has an episode yet."""
    end = max((run["curve_steps"][-1] for run in runs if run["curve_steps"]), default=0.0)
    grid = np.linspace(0, end, points)
    curves = []
    for run in runs:
        steps = np.asarray(run["curve_steps"], dtype=np.float64)
        values = np.array([np.nan if value is None else value for value in run["curve_returns"]], dtype=np.float64)
        index = np.searchsorted(steps, grid, side="right") - 1
        curves.append(np.where(index >= 0, values[np.maximum(index, 0)] if len(values) else np.nan, np.nan))
    curves = np.array(curves)
    with warnings.catch_warnings():  # a step where no seed has an episode yet: NaN, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        return grid, np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)


# ---------------------------------------------------------------------------------------------------------------------
# Writing the report
# ---------------------------------------------------------------------------------------------------------------------
def budget_text(row) -> str:
    unit = "episodes" if row.algo in EPISODE_BUDGET else "steps"
    value = f"{row.budget // 1000}k" if row.budget >= 10_000 and row.budget % 1000 == 0 else str(row.budget)
    return f"{value} {unit}"


def decimals(numbers: dict) -> int:
    """Decimals of a row's returns: one for returns of 10 and more, two below (a Foraging return lies in [0, 1], a
    game's score in [−1, 1], where one decimal would hide the differences)."""
    return 1 if abs(numbers["eval_mean"]) >= 10 else 2


def anchor_cells(row, numbers: dict | None) -> tuple:
    """The anchors of a row, and our number of each anchor's protocol minus the anchor."""
    cells, differences = [], []
    for anchor in anchors_of(row.algo, row.env_id):
        protocol = "last 100 train" if anchor.protocol == TRAIN else "eval"
        cells.append(f"{anchor.value:g} ({protocol}; {anchor.source}: {anchor.detail})")
        if numbers is not None:
            ours = numbers["train_mean"] if anchor.protocol == TRAIN else numbers["eval_mean"]
            differences.append(f"{ours - anchor.value:+.{decimals(numbers)}f} ({protocol})")
    return "<br>".join(cells) or "none", "<br>".join(differences) or "–"


def plot_env(env_id: str, curves: list, path: str) -> None:
    """Every row's learning curve on one env: mean over seeds, a band of ± one standard deviation, anchors dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for index, (row, runs) in enumerate(curves):
        color = f"C{index % 10}"
        grid, mean, std = learning_curve(runs)
        ax.plot(grid, mean, color=color, label=f"{row.label} ({len(runs)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2)
        for anchor in anchors_of(row.algo, row.env_id):
            if anchor.protocol == TRAIN:
                ax.axhline(anchor.value, color=color, linestyle="--", linewidth=1)
    ax.set_title(f"{env_id}: training return (mean of the last 10 episodes), mean ± std over seeds")
    ax.set_xlabel("env steps (episodes for the tabular scripts)")
    ax.set_ylabel("episodic return")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(suite: str, runs_dir: str, results_dir: str, rows=None) -> str:
    """Write `{results_dir}/{suite}/README.md` and the learning-curve PNGs of a suite's rows (default: those of
    benchmarks/suites.py); returns the README's path."""
    rows = SUITES[suite] if rows is None else rows
    out = os.path.join(results_dir, suite)
    os.makedirs(out, exist_ok=True)
    saved = read_saved(out)
    lines = [
        f"# Benchmark suite `{suite}`",
        "",
        "Made by",
        "",
        f"    python benchmarks/run.py --suite {suite}",
        f"    python benchmarks/report.py --suite {suite}",
        "",
        *([NOTES[suite], ""] if suite in NOTES else []),
        "Final eval: `eval_return_mean` of each seed's summary.json (greedy or deterministic episodes of the final "
        "policy), mean ± std over seeds. Last 100 train: mean return of the last 100 training episodes (CleanRL's "
        "protocol), mean ± std over seeds. IQM [95% CI]: interquartile mean of the final evals over seeds, with a "
        "bootstrap interval over seeds (see benchmarks/report.py). Ours − anchor: our number of the anchor's protocol "
        "minus the anchor. SPS and wall time: mean over seeds, on the machine named in the last column (see the list "
        "below the table); runs ran side by side, one per core (run.py's pool). Each seed's numbers and learning "
        f"curve are in [{SEEDS_FILE}]({SEEDS_FILE}); report.py keeps a seed from there when its run folder is not on "
        "the machine that writes the report, so a table can be completed a row at a time.",
        "",
        "| algorithm | env | budget | seeds | final eval | last 100 train | IQM [95% CI] | anchor | ours − anchor "
        "| SPS | wall time | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    machines, by_env, records = [], {}, []
    for row in rows:
        runs = row_records(runs_dir, suite, row, saved)
        records += runs
        numbers = aggregate(runs) if runs else None
        anchor_text, difference = anchor_cells(row, numbers)
        if numbers is None:
            cells = [row.label, row.env_id, budget_text(row), f"0 of {len(row.seeds)}", "not run"] + ["–"] * 2
            cells += [anchor_text, difference, "–", "–", "–"]
        else:
            for name in numbers["machines"]:
                if name not in machines:
                    machines.append(name)
            machine_ids = ", ".join(f"M{machines.index(name) + 1}" for name in numbers["machines"])
            low, high = numbers["ci"]
            d = decimals(numbers)
            cells = [
                row.label,
                row.env_id,
                budget_text(row),
                f"{numbers['seeds']} of {len(row.seeds)}",
                f"{numbers['eval_mean']:.{d}f} ± {numbers['eval_std']:.{d}f}",
                f"{numbers['train_mean']:.{d}f} ± {numbers['train_std']:.{d}f}",
                f"{numbers['iqm']:.{d}f} [{low:.{d}f}, {high:.{d}f}]",
                anchor_text,
                difference,
                f"{numbers['sps']:.0f}",
                f"{numbers['wall_time_s'] / 60:.1f} min",
                machine_ids,
            ]
            by_env.setdefault(row.env_id, []).append((row, runs))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Machines:", ""] + [f"- M{i + 1}: {name}" for i, name in enumerate(machines)]
    if any(row.args for row in rows):
        lines += ["", "Arguments beyond each script's defaults (benchmarks/suites.py):", ""]
        for row in rows:
            if row.args:
                args = " ".join(f"{key}={value}" for key, value in row.args.items())
                lines.append(f"- {row.label} on {row.env_id}: {args}")
    lines += ["", "## Learning curves", ""]
    for env_id, curves in by_env.items():
        name = f"curves_{env_id.replace('/', '-')}.png"
        plot_env(env_id, curves, os.path.join(out, name))
        lines += [f"![{env_id}]({name})", ""]
    with open(os.path.join(out, SEEDS_FILE), "w") as f:
        json.dump(records, f, indent=1)
    path = os.path.join(out, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def main(args: Args) -> int:
    if args.suite not in SUITES:
        print(f"report.py: error: unknown suite {args.suite!r}; the suites are {', '.join(SUITES)}", file=sys.stderr)
        return 2
    print(write_report(args.suite, args.runs_dir, args.results_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
