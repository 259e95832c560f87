"""What the three image scripts share: one copy of the environment code (dqn_atari.py's, tested in test_dqn_atari.py),
and a smoke run on ALE Pong through the Nature CNN (MinAtar's smoke runs are in test_common.py)."""

import inspect

import numpy as np
import pytest
from helpers import load_algo, only_run_dir, read_scalars

PIXEL_SCRIPTS = ("dqn_atari", "rainbow_atari", "ppo_atari")
SHARED = ("is_atari", "make_env", "FireReset", "LifeLossInfo", "GridVideoFrames", "learning_signals", "GameStates")


@pytest.mark.parametrize("name", PIXEL_SCRIPTS[1:])
@pytest.mark.parametrize("code", SHARED)
def test_the_environment_code_is_dqn_ataris(name, code):
    # one preprocessing for the image scripts: the tests of test_dqn_atari.py hold for every copy
    assert inspect.getsource(getattr(load_algo(name), code)) == inspect.getsource(getattr(load_algo("dqn_atari"), code))


# A few updates of the Nature CNN on Pong: the replay scripts take 140 gradient steps (the 100th is logged), PPO one
# update of one epoch.
PONG_SMOKE = {
    "dqn_atari": dict(total_timesteps=240, learning_starts=100, buffer_size=200, batch_size=8, train_frequency=1),
    "rainbow_atari": dict(total_timesteps=240, learning_starts=100, buffer_size=200, batch_size=8, train_frequency=1),
    "ppo_atari": dict(total_timesteps=128, num_envs=2, num_steps=64, num_minibatches=2, update_epochs=1),
}
LOSS = {"dqn_atari": "losses/td_loss", "rainbow_atari": "losses/loss", "ppo_atari": "losses/value_loss"}


@pytest.mark.parametrize("name", PIXEL_SCRIPTS)
def test_a_smoke_run_on_pong(name, tmp_path):
    module = load_algo(name)
    args = module.Args(env_id="ALE/Pong-v5", eval_episodes=1, log_dir=str(tmp_path), **PONG_SMOKE[name])
    summary = module.train(args)
    assert summary["total_timesteps"] == args.total_timesteps and summary["env_id"] == "ALE/Pong-v5"
    assert -21 <= summary["eval_return_mean"] <= 21  # a game of Pong, scored by the game
    losses = [value for _, value in read_scalars(only_run_dir(tmp_path), LOSS[name])]
    assert len(losses) == 1 and np.isfinite(losses).all()
