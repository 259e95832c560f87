"""Tables and learning curves from the run folders of a benchmark suite (benchmarks/run.py).

    python benchmarks/report.py --suite quick

writes `benchmarks/results/{suite}/README.md` and one learning-curve PNG per env beside it. The page opens with the
table; for each row of the suite (algorithm, env): the budget and seeds; our final evaluation (`summary.json`
`eval_return_mean`: greedy or deterministic episodes of the final policy), mean ± standard deviation over seeds; our
mean of the last 100 training episodes (CleanRL's protocol), mean ± standard deviation over seeds; the interquartile
mean (IQM) of the final evaluation over seeds with a 95% bootstrap confidence interval, both computed by rliable; the
published anchors (the number in the cell, its source and protocol in a numbered note under the table) and our number
of the same protocol minus the anchor; steps per second and wall time. The suite's notes (benchmarks/suites.py NOTES),
the machines and the commands that made the page follow the table.

Standard deviations are over seeds, with numpy's default ddof=0 (as CleanRL's tables). The IQM is rliable's
`metrics.aggregate_iqm` (scipy.stats.trim_mean(values, 0.25): `floor(n/4)` values cut from each end); its interval is
rliable's `library.get_interval_estimates`: the percentile interval of a stratified bootstrap over seeds (one task, so
resamples of the seeds with replacement), BOOTSTRAP_REPS resamples. rliable draws them from numpy's global random state
(its StratifiedBootstrap calls np.random.choice and ignores `random_state`), so report.py seeds that state for each
interval and restores it after: a report is the same every time.

Plots: one colour per row (no two lines of a figure share one), a row's training-protocol anchor dashed in its colour
and named in the legend by its note's number; rows whose budget counts episodes (EPISODE_BUDGET: the tabular scripts,
the planner, hac) are drawn in a panel of their own, over training episodes (over env steps for seeds saved before
seeds.json kept an episode axis, and the axis says so).

Beside the README, `seeds.json` keeps each seed's record: its final evaluation, last-100 training mean, SPS, wall time,
machine, and its learning curve at 101 points. The raw runs are not committed; with their records, a report made later
(or on another machine) keeps the seeds that ran before, and a seed whose run folder is present is read afresh from it.
"""

import dataclasses
import json
import os
import shlex
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.suites import EPISODE_BUDGET, EVAL, NOTES, SUITES, TRAIN, anchors_of  # noqa: E402

LAST_EPISODES = 100  # CleanRL's protocol: mean of the last 100 training episodes
# rliable's default is 50,000; 10,000 take ~1 s a row (50,000: ~5 s) and, for the 1 to 3 seeds of the committed rows,
# give the same interval: [min, max] of the seeds, each end drawn by ~1/27 of resamples, far above the 2.5% tails
BOOTSTRAP_REPS = 10_000
BOOTSTRAP_SEED = 0
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
    """Interquartile mean, by rliable (`metrics.aggregate_iqm`): the mean after cutting floor(n/4) values from each end
    of the sorted values."""
    from rliable import metrics

    return float(metrics.aggregate_iqm(np.asarray(values, dtype=np.float64)))


def bootstrap_ci(values, reps: int = BOOTSTRAP_REPS, level: float = 0.95) -> tuple:
    """rliable's interval of the IQM over seeds (`library.get_interval_estimates`): the percentile interval of a
    stratified bootstrap, here of one task, so resamples of `values` with replacement. Seeded, hence reproducible."""
    from rliable import library, metrics

    scores = np.asarray(values, dtype=np.float64).reshape(-1, 1)  # rliable's layout: runs × tasks
    state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)  # rliable's StratifiedBootstrap draws from the global state (np.random.choice)
    try:
        _, intervals = library.get_interval_estimates(
            {"row": scores},
            lambda sample: np.array([metrics.aggregate_iqm(sample)]),
            reps=reps,
            confidence_interval_size=level,
        )
    finally:
        np.random.set_state(state)
    low, high = intervals["row"][:, 0]
    return float(low), float(high)


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
            # the episodes finished by each point of the curve: the x axis of a row whose budget counts episodes
            curve_episodes = [int(count) for count in np.searchsorted(steps, curve_steps, side="right")]
            return dict(
                seed=summary["seed"],
                eval_return_mean=summary["eval_return_mean"],
                last_100_train=float(returns[-LAST_EPISODES:].mean()) if len(returns) else None,
                sps=summary["sps"],
                wall_time_s=summary["wall_time_s"],
                machine=machine,
                curve_steps=curve_steps,
                curve_returns=curve_returns,
                curve_episodes=curve_episodes,
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
    """What a row runs beyond its script, env and seed: its budget and arguments (as they read back from JSON), but for
    how often it writes snapshots, which changes nothing it computes."""
    args = {name: value for name, value in row.args.items() if name != "snapshot_frequency"}
    return json.loads(json.dumps(dict(budget=row.budget, **args)))


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


def learning_curve(runs: list, points: int = CURVE_POINTS, axis: str = "curve_steps") -> tuple:
    """Mean and standard deviation over seeds of the runs' smoothed training returns (see smoothed_curve), on a common
    grid of steps (`axis` "curve_steps") or of training episodes ("curve_episodes") up to the longest run's last
    episode; NaN where no run has an episode yet."""
    end = max((run[axis][-1] for run in runs if run[axis]), default=0.0)
    grid = np.linspace(0, end, points)
    curves = []
    for run in runs:
        steps = np.asarray(run[axis], dtype=np.float64)
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
IQM_HEADER = "IQM [95% CI] by rliable"
COLUMNS = (
    "Columns. Final eval: `eval_return_mean` of each seed's summary.json (greedy or deterministic episodes of the "
    "final policy), mean ± std over seeds. Last 100 train: mean return of the last 100 training episodes (CleanRL's "
    f"protocol), mean ± std over seeds. {IQM_HEADER}: the interquartile mean of the final evals over seeds and its 95% "
    "interval, both computed by [rliable](https://github.com/google-research/rliable) (`metrics.aggregate_iqm`; "
    "`library.get_interval_estimates`: percentile interval of a stratified bootstrap over seeds, "
    f"{BOOTSTRAP_REPS:,} resamples, seeded). Anchor: a published number, numbered: its source and protocol are in the "
    "note of that number above; ours − anchor: our number of the note's protocol minus the anchor. SPS and wall time: "
    "mean over seeds, on the machine named in the last column (see the list below); runs ran side by side, one per "
    f"core (run.py's pool). Each seed's numbers and learning curve are in [{SEEDS_FILE}]({SEEDS_FILE}); report.py "
    "keeps a seed from there when its run folder is not on the machine that writes the report, so a table can be "
    "completed a row at a time."
)
PROTOCOL = {
    TRAIN: "last 100 train",
    EVAL: "final eval",
}  # the column of ours an anchor of each protocol is compared with
# tab10, then colours unlike any of them: a figure gives each of up to 18 rows a colour of its own (more: spread over
# a colormap)
PALETTE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#000000", "#000080", "#800000", "#008080", "#ff00ff", "#ffd700", "#00ff00", "#87cefa"),
)


def budget_text(row) -> str:
    unit = "episodes" if row.algo in EPISODE_BUDGET else "steps"
    value = f"{row.budget // 1000}k" if row.budget >= 10_000 and row.budget % 1000 == 0 else str(row.budget)
    return f"{value} {unit}"


def decimals(numbers: dict) -> int:
    """Decimals of a row's returns: one for returns of 10 and more, two below (a Foraging return lies in [0, 1], a
    game's score in [−1, 1], where one decimal would hide the differences)."""
    return 1 if abs(numbers["eval_mean"]) >= 10 else 2


def number_anchors(rows) -> dict:
    """Each distinct anchor of the rows and the number of its note: 1, 2, ... in the order the table cites them."""
    numbers = {}
    for row in rows:
        for anchor in anchors_of(row.algo, row.env_id):
            numbers.setdefault(anchor, len(numbers) + 1)
    return numbers


def anchor_note(anchor, number: int) -> str:
    """The numbered note of an anchor under the table: its protocol (which of our columns it is compared with), its
    source and what a reader needs to judge the comparison."""
    return (
        f"{number}. {anchor.value:g}, compared with our {PROTOCOL[anchor.protocol]}: {anchor.source}: {anchor.detail}"
    )


def source_name(source: str) -> str:
    """An anchor's source without its link: the text of a markdown link `[text](url)`."""
    return source[1 : source.index("](")] if source.startswith("[") and "](" in source else source


def anchor_cells(row, numbers: dict | None, anchor_numbers: dict) -> tuple:
    """The anchors of a row (each value and its note's number), and our number of each anchor's protocol minus it."""
    cells, differences = [], []
    for anchor in anchors_of(row.algo, row.env_id):
        note = anchor_numbers[anchor]
        cells.append(f"{anchor.value:g} [{note}]")
        if numbers is not None:
            ours = numbers["train_mean"] if anchor.protocol == TRAIN else numbers["eval_mean"]
            differences.append(f"{ours - anchor.value:+.{decimals(numbers)}f} [{note}]")
    return "<br>".join(cells) or "none", "<br>".join(differences) or "–"


def line_colors(count: int) -> list:
    """`count` colours, no two alike (PALETTE; beyond its length, evenly spaced on the turbo colormap)."""
    if count <= len(PALETTE):
        return list(PALETTE[:count])
    import matplotlib
    from matplotlib.colors import to_hex

    colormap = matplotlib.colormaps["turbo"]
    return [to_hex(colormap(index / (count - 1))) for index in range(count)]


def plot_env(env_id: str, curves: list, path: str, anchor_numbers: dict | None = None) -> list:
    """Every row's learning curve on one env: mean over seeds, a band of ± one standard deviation, each row in a
    colour of its own, its training-protocol anchors dashed in that colour and named in the legend by their notes'
    numbers. Rows whose budget counts episodes (EPISODE_BUDGET) get a panel of their own, over training episodes (over
    env steps, said on the axis, when a seed's record has no episode axis: records saved before there was one). Returns
    each drawn line: its label, colour, whether dashed, and its panel's x label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    anchor_numbers = number_anchors([row for row, _ in curves]) if anchor_numbers is None else anchor_numbers
    colored = [(row, runs, color) for (row, runs), color in zip(curves, line_colors(len(curves)), strict=True)]
    panels = [
        [entry for entry in colored if entry[0].algo not in EPISODE_BUDGET],
        [entry for entry in colored if entry[0].algo in EPISODE_BUDGET],
    ]
    panels = [(members, index == 1) for index, members in enumerate(panels) if members]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels) + 4, 5), squeeze=False, layout="constrained")
    handles, labels, drawn = [], [], []
    for ax, (members, episodic) in zip(axes[0], panels, strict=True):
        by_episode = episodic and all("curve_episodes" in run for _, runs, _ in members for run in runs)
        for row, runs, color in members:
            grid, mean, std = learning_curve(runs, axis="curve_episodes" if by_episode else "curve_steps")
            ax.plot(grid, mean, color=color, label=f"{row.label} ({len(runs)} seeds)")
            ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2)
            for anchor in anchors_of(row.algo, row.env_id):
                if anchor.protocol == TRAIN:
                    label = (
                        f"{row.label} anchor [{anchor_numbers[anchor]}]: {anchor.value:g}, {source_name(anchor.source)}"
                    )
                    ax.axhline(anchor.value, color=color, linestyle="--", linewidth=1, label=label)
        if not episodic:
            ax.set_xlabel("env steps")
            ax.set_title("budget in env steps", fontsize=10)
        elif by_episode:
            ax.set_xlabel("training episodes")
            ax.set_title("budget in episodes", fontsize=10)
        else:
            ax.set_xlabel("env steps (these seeds' records have no episode axis)")
            ax.set_title("budget in episodes", fontsize=10)
        ax.set_ylabel("training return (mean of the last 10 episodes)")
        ax.grid(alpha=0.3)
        for line in ax.get_lines():
            drawn.append(
                dict(
                    label=line.get_label(),
                    color=to_hex(line.get_color()),
                    dashed=line.get_linestyle() == "--",
                    xlabel=ax.get_xlabel(),
                )
            )
        more_handles, more_labels = ax.get_legend_handles_labels()
        handles += more_handles
        labels += more_labels
    fig.suptitle(f"{env_id}: mean ± std over seeds")
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def report_command(args: Args) -> str:
    """The report.py command line of `args`: the suite and every argument not at its default, as given."""
    line = ["python", "benchmarks/report.py"]
    for field in dataclasses.fields(Args):
        value = getattr(args, field.name)
        if field.default is dataclasses.MISSING or value != field.default:
            line += ["--" + field.name.replace("_", "-"), str(value)]
    return shlex.join(line)


def run_command(suite: str, rows, ran: set, runs_dir: str) -> str:
    """The run.py command line that makes the runs a report of `rows` reads: `--only` the rows that ran when not all
    of the suite's rows did, and `--runs-dir` when it is not the default."""
    line = ["python", "benchmarks/run.py", "--suite", suite]
    labels = list(dict.fromkeys(row.label for row in SUITES.get(suite, rows)))
    only = [label for label in dict.fromkeys(row.label for row in rows) if label in ran]
    if only and only != labels:
        line += ["--only", *only]
    if runs_dir != Args.runs_dir:
        line += ["--runs-dir", runs_dir]
    return shlex.join(line)


def write_report(suite: str, runs_dir: str, results_dir: str, rows=None, command: str | None = None) -> str:
    """Write `{results_dir}/{suite}/README.md` and the learning-curve PNGs of a suite's rows (default: those of
    benchmarks/suites.py); returns the README's path. `command`: the report.py command line that made it, for the
    page's "Made by" (default: the one of these arguments)."""
    rows = SUITES[suite] if rows is None else rows
    if command is None:
        command = report_command(Args(suite=suite, runs_dir=runs_dir, results_dir=results_dir))
    out = os.path.join(results_dir, suite)
    os.makedirs(out, exist_ok=True)
    saved = read_saved(out)
    anchor_numbers = number_anchors(rows)
    lines = [
        f"# Benchmark suite `{suite}`",
        "",
        f"| algorithm | env | budget | seeds | final eval | last 100 train | {IQM_HEADER} | anchor | ours − anchor "
        "| SPS | wall time | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    machines, by_env, records, ran = [], {}, [], set()
    for row in rows:
        runs = row_records(runs_dir, suite, row, saved)
        records += runs
        numbers = aggregate(runs) if runs else None
        anchor_text, difference = anchor_cells(row, numbers, anchor_numbers)
        if numbers is None:
            cells = [row.label, row.env_id, budget_text(row), f"0 of {len(row.seeds)}", "not run"] + ["–"] * 2
            cells += [anchor_text, difference, "–", "–", "–"]
        else:
            ran.add(row.label)
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
    if anchor_numbers:
        lines += ["", "Anchors:", ""] + [anchor_note(anchor, number) for anchor, number in anchor_numbers.items()]
    lines += ["", COLUMNS, "", "Machines:", ""] + [f"- M{i + 1}: {name}" for i, name in enumerate(machines)]
    if any(row.args for row in rows):
        lines += ["", "Arguments beyond each script's defaults (benchmarks/suites.py):", ""]
        for row in rows:
            if row.args:
                args = " ".join(f"{key}={value}" for key, value in row.args.items())
                lines.append(f"- {row.label} on {row.env_id}: {args}")
    if suite in NOTES:
        lines += ["", "## Notes", "", NOTES[suite]]
    lines += ["", "## Made by", "", f"    {run_command(suite, rows, ran, runs_dir)}", f"    {command}"]
    lines += ["", "## Learning curves", ""]
    for env_id, curves in by_env.items():
        name = f"curves_{env_id.replace('/', '-')}.png"
        plot_env(env_id, curves, os.path.join(out, name), anchor_numbers)
        lines += [f"![{env_id}]({name})", ""]
    write_atomically(os.path.join(out, SEEDS_FILE), json.dumps(records, indent=1))
    path = os.path.join(out, "README.md")
    write_atomically(path, "\n".join(lines))
    return path


def write_atomically(path: str, text: str) -> None:
    """Write a file whole or not at all: to a temp file beside it, then rename (a report stopped half-way leaves the
    committed seeds.json as it was)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main(args: Args) -> int:
    if args.suite not in SUITES:
        print(f"report.py: error: unknown suite {args.suite!r}; the suites are {', '.join(SUITES)}", file=sys.stderr)
        return 2
    print(write_report(args.suite, args.runs_dir, args.results_dir, command=report_command(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
