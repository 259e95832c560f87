"""Steps per second of every torch script on a GPU and on the CPU beside it, at a fixed short budget that reaches the
learning phase, in a few minutes; writes a table.

    python benchmarks/gpu_sps.py                      # on a machine with a GPU: both columns, about 6 minutes
    python benchmarks/gpu_sps.py --cpu-only           # anywhere: the CPU column alone
    python benchmarks/gpu_sps.py --only dqn sac --scale 2

Each measurement is one run of the script as a user types it (`--cuda` or `--no-cuda`), one after the other with
nothing else running, each with one CPU thread as benchmarks/run.py's runs have (OMP_NUM_THREADS=1); its SPS is the
summary's `sps` (env steps over the training wall time, the final evaluation left out). A budget covers a few seconds
of learning on this project's 2-core CPU machine; SPS over a short run includes the first steps' warm-up (CUDA's
kernels and allocator), so the GPU column is a lower bound of what a long run gets. a3c.py (workers sharing CPU memory)
and the numpy scripts have no GPU path and are not measured.

Written to `{results_dir}/README.md` (the table, the machine, the command) and `results.json`.
"""

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import run  # noqa: E402
from benchmarks.suites import Row  # noqa: E402

OFF_POLICY_ARGS = dict(learning_starts=500)
DQN_ARGS = dict(learning_starts=500, train_frequency=4, gradient_steps=1, target_network_frequency=500)
PIXEL_ARGS = dict(learning_starts=500, buffer_size=5_000)
# one row a torch script with a --cuda flag: its budget reaches the learning phase and takes a few seconds on a CPU core
ROWS = (
    Row(algo="dqn", env_id="CartPole-v1", budget=3_000, args=DQN_ARGS),
    Row(algo="c51", env_id="CartPole-v1", budget=3_000, args=DQN_ARGS),
    Row(algo="qr_dqn", env_id="CartPole-v1", budget=3_000, args=DQN_ARGS),
    Row(algo="rainbow", env_id="CartPole-v1", budget=3_000, args=DQN_ARGS),
    Row(algo="ppo", env_id="CartPole-v1", budget=8_192),
    Row(algo="ppo_continuous", env_id="Pendulum-v1", budget=4_096),
    Row(algo="reinforce", env_id="CartPole-v1", budget=8_000),
    Row(algo="a2c", env_id="CartPole-v1", budget=8_000),
    Row(algo="trpo", env_id="CartPole-v1", budget=4_096),
    Row(algo="ddpg", env_id="Pendulum-v1", budget=1_500, args=OFF_POLICY_ARGS),
    Row(algo="td3", env_id="Pendulum-v1", budget=1_500, args=OFF_POLICY_ARGS),
    Row(algo="sac", env_id="Pendulum-v1", budget=1_500, args=OFF_POLICY_ARGS),
    Row(algo="dqn_atari", env_id="MinAtar/Breakout-v1", budget=2_000, args=PIXEL_ARGS),
    Row(algo="rainbow_atari", env_id="MinAtar/Breakout-v1", budget=1_500, args=PIXEL_ARGS),
    Row(algo="ppo_atari", env_id="MinAtar/Breakout-v1", budget=4_096),
    Row(algo="maddpg", env_id="simple_spread_v3", budget=3_000, args=dict(learning_starts=1_000)),
    Row(algo="qmix", env_id="simple_spread_v3", budget=3_000, args=dict(learning_starts=1_000)),
    Row(algo="hac", env_id="MountainCarContinuous-v0", budget=3),
    # an episode of random play, then one planned (its 100 plans with a tenth of the default CEM's work)
    Row(
        algo="planet",
        env_id="Pendulum-v1",
        budget=400,
        args=dict(seed_episodes=1, train_steps=5, candidates=100, iterations=5, top_k=10),
    ),
)


@dataclass
class Args:
    only: tuple[str, ...] = ()
    """measure only these scripts"""
    scale: float = 1.0
    """multiply every budget by this (a longer run: less warm-up in the GPU column)"""
    cpu_only: bool = False
    """measure the CPU column alone (on a machine without a GPU)"""
    results_dir: str = os.path.join(REPO, "benchmarks", "results", "gpu_sps")
    """where the table goes"""
    time_limit_s: float = 120.0
    """a run still going after this is stopped and left out of the table"""


def fail(message: str, status: int = 2):
    print(f"gpu_sps.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def measure(row: Row, cuda: bool, folder: str, time_limit_s: float) -> float | None:
    """One run on the GPU or the CPU, in a fresh `folder`; its summary's SPS, or None if it failed."""
    line = run.command(row, 1, folder) + ["--cuda" if cuda else "--no-cuda"]
    shutil.rmtree(folder, ignore_errors=True)  # an earlier measurement's summary would be read as this one's
    os.makedirs(folder)
    outcome = run.execute(line, folder, time_limit_s, REPO, die_with_parent=True)  # Ctrl-C here ends it too
    summary = run.summary_path(folder)
    if outcome.returncode != 0 or summary is None:
        print(f"  {row.algo} {'GPU' if cuda else 'CPU'} failed: {outcome.error}", file=sys.stderr)
        return None
    with open(summary) as f:
        return json.load(f)["sps"]


def gpu_name() -> str | None:
    """The GPU torch sees, asked in a child process (this one stays without CUDA), or None."""
    probe = "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() or None


def main(args: Args) -> int:
    known = {row.algo for row in ROWS}
    if unknown := [name for name in args.only if name not in known]:
        fail(f"no row for {', '.join(unknown)}; the measured scripts are {', '.join(sorted(known))}")
    if args.scale <= 0:
        fail(f"--scale must be positive, got {args.scale}")
    gpu = None if args.cpu_only else gpu_name()
    if not args.cpu_only and gpu is None:
        fail("torch sees no GPU here; --cpu-only measures the CPU column alone")
    rows = [
        dataclasses.replace(row, budget=max(1, round(row.budget * args.scale)))
        for row in ROWS
        if not args.only or row.algo in args.only
    ]
    scratch = os.path.join(args.results_dir, "runs")
    results, start = [], time.time()
    try:
        for row in rows:
            sps = {}
            for device in ("cpu",) if args.cpu_only else ("cpu", "gpu"):
                folder = os.path.join(scratch, row.algo, device)
                sps[device] = measure(row, device == "gpu", folder, args.time_limit_s)
            results.append(dict(algo=row.algo, env_id=row.env_id, budget=row.budget, args=row.args, **sps))
            shown = ", ".join(f"{device} {value:.0f}" if value else f"{device} failed" for device, value in sps.items())
            print(f"[gpu_sps] {row.algo} on {row.env_id}: {shown} SPS; {run.duration(time.time() - start)}", flush=True)
    except KeyboardInterrupt:  # the run going dies with this process (its parent-death signal)
        print("interrupted: no table written", file=sys.stderr)
        return 130
    write_table(results, args, gpu)
    return 0


def write_table(results: list, args: Args, gpu: str | None) -> None:
    os.makedirs(args.results_dir, exist_ok=True)
    with open(os.path.join(args.results_dir, "results.json"), "w") as f:
        json.dump(dict(machine=run.machine(), gpu=gpu, date=time.strftime("%Y-%m-%d"), rows=results), f, indent=2)
    unit = {row.algo: run.budget_field(run.load_algo(row.algo).Args).split("_")[1] for row in ROWS}
    lines = [
        "# Steps per second on a GPU and on the CPU beside it",
        "",
        "| script | env | budget | CPU SPS | GPU SPS | GPU / CPU |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu, gpu_sps = r.get("cpu"), r.get("gpu")
        ratio = f"{gpu_sps / cpu:.2f}×" if cpu and gpu_sps else "–"
        lines.append(
            f"| {r['algo']} | {r['env_id']} | {r['budget']} {unit[r['algo']]} | "
            f"{f'{cpu:.0f}' if cpu else '–'} | {f'{gpu_sps:.0f}' if gpu_sps else '–'} | {ratio} |"
        )
    command = shlex.join(["python", "benchmarks/gpu_sps.py", *sys.argv[1:]]) if __name__ == "__main__" else ""
    lines += [
        "",
        f"Measured on {time.strftime('%Y-%m-%d')}: {run.machine()}; GPU: {gpu or 'none (the CPU column only)'}. "
        "One run per cell, one after the other, one CPU thread each; SPS from the run's summary.json (training "
        "steps over training time). Budgets and arguments beyond the defaults: benchmarks/gpu_sps.py's ROWS"
        + (f" (times {args.scale:g})" if args.scale != 1 else "")
        + ".",
        "",
        f"Made by `{command}`" if command else "",
    ]
    with open(os.path.join(args.results_dir, "README.md"), "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    raise SystemExit(main(tyro.cli(Args)))
