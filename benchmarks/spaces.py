"""Search spaces of benchmarks/tune.py, as data: for each script, the Args fields a tuner varies and the ranges a
practitioner would try (the RL Zoo's `hyperparams_opt.py` and CleanRL's tuner were read for the usual ranges; each
space holds the script's own defaults (a float range, where one lies outside it, its nearest bound): they are a
study's first trial). A field not listed keeps the script's
default, or the value given with `tune.py --set`.

`LogUniform` and `Uniform` are float ranges; `Choice` is a list of values (integers, booleans, or floats where only a
few make sense). `SCORE_RANGES` maps an env to the returns of a poor and of a solved policy: tuning over several envs
maximizes the mean of (return − poor) / (solved − poor), as CleanRL's tuner does, so that no env's scale dominates.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float


@dataclass(frozen=True)
class Choice:
    values: tuple


GAMMA = Choice((0.9, 0.95, 0.98, 0.99, 0.995, 0.999))
GAE_LAMBDA = Choice((0.8, 0.9, 0.92, 0.95, 0.98, 1.0))

PPO = {
    "learning_rate": LogUniform(1e-5, 1e-2),
    "num_envs": Choice((1, 2, 4, 8, 16)),
    "num_steps": Choice((8, 16, 32, 64, 128, 256, 512, 1024, 2048)),
    "num_minibatches": Choice((1, 2, 4, 8, 16, 32)),
    "update_epochs": Choice((1, 4, 10, 20)),
    "gamma": GAMMA,
    "gae_lambda": GAE_LAMBDA,
    "clip_coef": Choice((0.1, 0.2, 0.3, 0.4)),
    "ent_coef": LogUniform(1e-8, 0.1),
    "vf_coef": Uniform(0.1, 1.0),
    "max_grad_norm": Choice((0.3, 0.5, 0.8, 1.0, 2.0, 5.0)),
}

NORMALIZATION = {"norm_obs": Choice((False, True)), "norm_reward": Choice((False, True))}

A2C = {
    "learning_rate": LogUniform(1e-5, 1e-2),
    "num_steps": Choice((5, 8, 16, 20, 32, 64)),
    "gamma": GAMMA,
    "gae_lambda": GAE_LAMBDA,
    "norm_adv": Choice((False, True)),
    "ent_coef": LogUniform(1e-8, 0.1),
    "vf_coef": Uniform(0.1, 1.0),
    "max_grad_norm": Choice((0.3, 0.5, 0.8, 1.0, 2.0, 5.0)),
    "norm_obs": Choice((False, True)),
}

DQN = {
    "learning_rate": LogUniform(1e-5, 1e-2),
    "buffer_size": Choice((10_000, 50_000, 100_000)),
    "gamma": GAMMA,
    "target_network_frequency": Choice((1, 256, 1_000, 5_000, 10_000)),
    "batch_size": Choice((32, 64, 128, 256)),
    "end_e": Uniform(0.0, 0.2),
    "exploration_fraction": Uniform(0.0, 0.5),
    "learning_starts": Choice((0, 1_000, 5_000)),
    "train_frequency": Choice((1, 4, 8, 16, 128, 256)),
    "gradient_steps": Choice((1, 2, 4, 8, 16, 128)),
}

OFF_POLICY = {
    "learning_rate": LogUniform(1e-5, 1e-2),
    "buffer_size": Choice((10_000, 100_000, 200_000, 1_000_000)),
    "gamma": GAMMA,
    "tau": Choice((0.001, 0.005, 0.01, 0.02, 0.05)),
    "batch_size": Choice((64, 128, 256, 512)),
    "learning_starts": Choice((1_000, 5_000, 10_000)),
}

TABULAR = {
    "alpha": Uniform(0.01, 1.0),
    "gamma": Choice((0.9, 0.95, 0.99, 1.0)),
    "start_e": Uniform(0.01, 1.0),
    "end_e": Uniform(0.0, 0.2),
    "exploration_fraction": Uniform(0.1, 1.0),
}

SPACES = {
    "ppo": PPO | NORMALIZATION,
    "ppo_continuous": PPO | NORMALIZATION,
    "a2c": A2C,
    "a3c": A2C,
    "reinforce": {
        "learning_rate": LogUniform(1e-5, 1e-2),
        "num_envs": Choice((1, 2, 4, 8, 16)),
        "gamma": GAMMA,
        "norm_obs": Choice((False, True)),
        "norm_reward": Choice((False, True)),
    },
    "trpo": {
        "num_steps": Choice((128, 256, 512, 1024, 2048)),
        "gamma": GAMMA,
        "gae_lambda": GAE_LAMBDA,
        "max_kl": LogUniform(1e-3, 0.1),
        "vf_learning_rate": LogUniform(1e-5, 1e-2),
        "vf_epochs": Choice((5, 10, 20)),
        "norm_obs": Choice((False, True)),
    },
    "dqn": DQN,
    "c51": DQN,
    "qr_dqn": DQN,
    "rainbow": {name: space for name, space in DQN.items() if name not in ("end_e", "exploration_fraction")}
    | {"n_step": Choice((1, 3, 5)), "noisy_sigma0": Choice((0.1, 0.5))},
    "ddpg": OFF_POLICY | {"exploration_noise": Uniform(0.05, 0.5)},
    "td3": OFF_POLICY | {"exploration_noise": Uniform(0.05, 0.5), "policy_noise": Uniform(0.1, 0.5)},
    "sac": OFF_POLICY,
    "q_learning": TABULAR,
    "sarsa": TABULAR,
    "expected_sarsa": TABULAR,
    "dyna_q": TABULAR | {"planning_steps": Choice((0, 5, 10, 50))},
}

# (poor, solved): the returns that normalization maps to 0 and 1 (random or constant play; the env's threshold or
# the best return reached)
SCORE_RANGES = {
    "CartPole-v1": (0.0, 500.0),
    "Acrobot-v1": (-500.0, -100.0),
    "MountainCar-v0": (-200.0, -110.0),
    "LunarLander-v3": (-200.0, 200.0),
    "Pendulum-v1": (-1500.0, -200.0),
    "MountainCarContinuous-v0": (-50.0, 90.0),
    "LunarLanderContinuous-v3": (-200.0, 200.0),
    "Taxi-v4": (-200.0, 8.0),
    "FrozenLake-v1": (0.0, 0.74),
    "CliffWalking-v1": (-100.0, -13.0),
}
