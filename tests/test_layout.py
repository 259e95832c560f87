"""The layout every script follows (CONTRIBUTING.md): the algorithm first, `train()` on about one screen, and one run
plumbing block that is byte-identical in every torch script (and in every numpy script); code that several scripts copy
is tested in every copy."""

import ast
import os

import gymnasium as gym
import numpy as np
import pytest
from helpers import ALGO_FILES, load_algo

NAMES = [os.path.basename(path)[:-3] for path in ALGO_FILES]
PLUMBING_START, MAIN_GUARD = "# Run plumbing", 'if __name__ == "__main__":'
TRAIN_MAX_LINES = 160  # issue 18: no train() over 160 lines
TRAIN_MAX_LINES_DQN = 110  # issue 18: dqn.py's train() at most 110 lines (it was 157)


def _source(name: str) -> str:
    with open(os.path.join(os.path.dirname(ALGO_FILES[0]), f"{name}.py")) as f:
        return f.read()


def plumbing_block(source: str) -> str:
    """The lines from `# Run plumbing` up to the `__main__` guard."""
    lines = source.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(PLUMBING_START)]
    ends = [i for i, line in enumerate(lines) if line.startswith(MAIN_GUARD)]
    assert len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0], "one plumbing block, before the __main__ guard"
    return "\n".join(lines[starts[0] : ends[0]])


def uses_torch(source: str) -> bool:
    return "\nimport torch\n" in source


def plumbing_names(source: str) -> set:
    """The top-level functions and classes the plumbing block defines."""
    return {n.name for n in ast.parse(plumbing_block(source)).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


@pytest.mark.parametrize("torch_scripts", [True, False], ids=["torch", "numpy"])
def test_the_plumbing_block_is_identical_in_every_script_of_a_kind(torch_scripts):
    blocks = {}
    for name in NAMES:
        source = _source(name)
        if uses_torch(source) == torch_scripts:
            blocks.setdefault(plumbing_block(source), []).append(name)
    assert blocks, "no script of this kind"
    assert len(blocks) == 1, "the plumbing blocks differ: " + " | ".join(", ".join(v) for v in blocks.values())


def test_the_block_comparison_can_fail():
    # a one-character change in one copy is a different block
    source = _source("dqn")
    changed = source.replace("raise SystemExit(status)", "raise SystemExit(status) ")
    assert plumbing_block(changed) != plumbing_block(source)


@pytest.mark.parametrize("name", NAMES)
def test_sections_come_in_order(name):
    """Docstring, imports, Args, the algorithm, check_args and train, then the plumbing block and the guard."""
    source = _source(name)
    tree = ast.parse(source)
    assert ast.get_docstring(tree), "a module docstring"
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    block_line = next(i for i, line in enumerate(source.splitlines(), 1) if line.startswith(PLUMBING_START))
    before = [n.name for n in defs if n.lineno < block_line]
    assert before[0] == "Args", "Args is the first definition"
    assert before[-1] == "train", "train() is the last definition before the plumbing block"
    # nothing of the plumbing is defined among the algorithm's functions
    assert not plumbing_names(source) & set(before[:-1])
    # nothing but the guard follows the block
    assert all(n.lineno < block_line or n.name in plumbing_names(source) for n in defs)


@pytest.mark.parametrize("name", NAMES)
def test_train_fits_on_about_one_screen(name):
    train = next(n for n in ast.parse(_source(name)).body if isinstance(n, ast.FunctionDef) and n.name == "train")
    length = train.end_lineno - train.lineno + 1
    assert length <= (TRAIN_MAX_LINES_DQN if name == "dqn" else TRAIN_MAX_LINES), length


@pytest.mark.parametrize("name", NAMES)
def test_the_script_name_is_not_repeated_in_strings(name):
    """The name comes from __file__ once (ALGO, exp_name); no message or summary field spells it out again."""
    tree = ast.parse(_source(name))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    # attribute docstrings of Args (a string right after a field) are documentation too
    args = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Args")
    docstrings |= {id(n.value) for n in args.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    strings = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]
    assert not [s for s in strings if s == name or f"{name}.py" in s]


# Code that several scripts copy, tested in every copy.
def _copies(function: str) -> list:
    return [name for name in NAMES if hasattr(load_algo(name), function)]


@pytest.mark.parametrize("name", _copies("linear_schedule"))
def test_linear_schedule_in_every_copy(name):
    schedule = load_algo(name).linear_schedule
    # from 1.0 to 0.1 over 100 steps: 1.0 at 0, 0.55 halfway, 0.1 at the end and after
    assert [float(schedule(1.0, 0.1, 100, t)) for t in (0, 50, 100, 1_000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    # a zero duration (--exploration-fraction 0) is end_e from the start, not a ZeroDivisionError
    assert float(schedule(1.0, 0.1, 0, 0)) == pytest.approx(0.1)


@pytest.mark.parametrize("name", _copies("true_next_obs"))
def test_true_next_obs_in_every_copy(name):
    # CartPole cut off after 3 steps, in a same-step-autoreset vector env, next to a plain env as the reference
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=3)] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    reference = gym.make("CartPole-v1", max_episode_steps=3)
    envs.reset(seed=[7, 8])
    reference.reset(seed=7)
    for step in range(3):
        next_obs, _, _, truncated, infos = envs.step(np.array([step % 2, step % 2]))
        ref_obs, *_ = reference.step(step % 2)
    assert truncated.all()
    real = load_algo(name).true_next_obs(next_obs, infos)
    np.testing.assert_array_equal(real[0], ref_obs)  # the state the episode was cut off in, not the reset one
    assert not np.array_equal(next_obs[0], ref_obs)
    next_obs, _, _, _, infos = envs.step(np.array([0, 0]))
    np.testing.assert_array_equal(load_algo(name).true_next_obs(next_obs, infos), next_obs)  # no episode ended
