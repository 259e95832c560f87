"""algos/reinforce.py, a2c.py, a3c.py and trpo.py: reward-to-go, the policies' math against torch.distributions, TRPO's
conjugate gradient, Fisher-vector product and line search, A3C's shared RMSProp and its worker processes, the Box
action path on Pendulum, and learning tests. Their GAE is tested with PPO's, in test_ppo.py."""

import multiprocessing
import os
import queue

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import assert_learns, load_algo, model_file, only_run_dir, smoke_args

reinforce, a2c, a3c, trpo = (load_algo(name) for name in ("reinforce", "a2c", "a3c", "trpo"))
MODULES = [reinforce, a2c, a3c, trpo]
CARTPOLE = gym.make("CartPole-v1")
PENDULUM = gym.make("Pendulum-v1")


def test_reward_to_go_matches_a_brute_force_sum():
    rng = np.random.default_rng(0)
    num_steps, num_envs, gamma = 15, 4, 0.95
    lengths = [15, 1, 7, 11]  # each env's episode; its rewards are 0 after it ended, as in reinforce.py's batches
    rewards = rng.normal(size=(num_steps, num_envs))
    for env, length in enumerate(lengths):
        rewards[length:, env] = 0.0
    expected = np.zeros_like(rewards)
    for env, length in enumerate(lengths):
        for t in range(length):
            expected[t, env] = sum(gamma ** (k - t) * rewards[k, env] for k in range(t, length))
    returns = reinforce.reward_to_go(torch.tensor(rewards), gamma)
    np.testing.assert_allclose(returns.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_log_probs_and_entropies_match_torch_distributions(module):
    torch.manual_seed(0)
    logits = torch.randn(64, 5) * 2
    actions = torch.randint(0, 5, (64,)).float()  # stored as floats in the rollout buffers
    categorical = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(module.categorical_log_prob(logits, actions), categorical.log_prob(actions.long()))
    torch.testing.assert_close(module.categorical_entropy(logits), categorical.entropy())

    mean, log_std, x = torch.randn(64, 3), torch.randn(64, 3) * 0.5, torch.randn(64, 3) * 2
    normal = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(module.gaussian_log_prob(x, mean, log_std), normal.log_prob(x).sum(-1))
    torch.testing.assert_close(module.gaussian_entropy(log_std), normal.entropy().sum(-1))


@pytest.mark.parametrize("act_space", [CARTPOLE.action_space, PENDULUM.action_space], ids=["Discrete", "Box"])
def test_agent_samples_from_the_distribution_whose_log_prob_it_reports(act_space):
    torch.manual_seed(0)
    agent = a2c.Agent(obs_dim=4, act_space=act_space)
    obs = torch.randn(20_000, 4)
    with torch.no_grad():
        actions, log_prob, _, _ = agent.get_action_and_value(obs)
        out = agent.actor(obs)
    if agent.continuous:
        reference = torch.distributions.Normal(out, agent.actor_logstd.exp().expand_as(out))
        torch.testing.assert_close(log_prob, reference.log_prob(actions).sum(-1))
        standardized = (actions - out) / agent.actor_logstd.exp()
        assert standardized.mean().abs() < 0.02 and (standardized.std() - 1).abs() < 0.02
    else:
        torch.testing.assert_close(log_prob, torch.distributions.Categorical(logits=out).log_prob(actions))
        # the policy starts near uniform (last layer's gain 0.01): both actions about equally often
        assert abs(actions.float().mean().item() - 0.5) < 0.02


def test_trpo_kl_divergences_match_torch_distributions():
    torch.manual_seed(0)
    old_logits, new_logits = torch.randn(32, 4), torch.randn(32, 4)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=old_logits), torch.distributions.Categorical(logits=new_logits)
    )
    torch.testing.assert_close(trpo.categorical_kl(old_logits, new_logits), expected)
    old_mean, new_mean, old_log_std, new_log_std = (torch.randn(32, 2) for _ in range(4))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(old_mean, old_log_std.exp()), torch.distributions.Normal(new_mean, new_log_std.exp())
    ).sum(-1)
    torch.testing.assert_close(trpo.gaussian_kl(old_mean, old_log_std, new_mean, new_log_std), expected)


def test_conjugate_gradient_solves_a_random_spd_system():
    torch.manual_seed(0)
    n = 20
    m = torch.randn(n, n, dtype=torch.float64)
    a = m @ m.T + 0.1 * torch.eye(n, dtype=torch.float64)  # symmetric positive definite
    b = torch.randn(n, dtype=torch.float64)
    x = trpo.conjugate_gradient(lambda v: a @ v, b, iters=200, residual_tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=0, atol=1e-6)


def _tiny_agent_and_kl(act_space):
    """A tiny TRPO agent, a batch of states, and the mean KL from the agent's current policy as a function of it."""
    torch.manual_seed(0)
    agent = trpo.Agent(obs_dim=3, act_space=act_space).double()
    with torch.no_grad():  # move off the near-uniform initial policy, so that the Fisher matrix is not degenerate
        for param in agent.parameters():
            param.add_(0.3 * torch.randn_like(param))
    obs = torch.randn(16, 3, dtype=torch.float64)
    with torch.no_grad():
        old_policy = agent.policy_params(obs)
    params = [p for name, p in agent.named_parameters() if not name.startswith("critic.")]
    return agent, params, lambda: agent.kl(obs, old_policy)


@pytest.mark.parametrize("act_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,))], ids=["Discrete", "Box"])
def test_fisher_vector_product_equals_the_explicit_fisher_matrix_times_a_vector(act_space):
    agent, params, mean_kl = _tiny_agent_and_kl(act_space)
    flat = torch.nn.utils.parameters_to_vector(params).detach()

    def kl_gradient(flat_params):  # ∇_θ KL(π_old‖π_θ) as a function of the flat θ, π_old fixed
        torch.nn.utils.vector_to_parameters(flat_params, params)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(mean_kl(), params, create_graph=True)])

    # F: the Jacobian of the KL's gradient at θ = θ_old, by finite differences of autograd gradients, column by column
    eps = 1e-6
    fisher = torch.stack(
        [
            (kl_gradient(flat + eps * e) - kl_gradient(flat - eps * e)).detach() / (2 * eps)
            for e in torch.eye(len(flat))
        ],
        dim=1,
    )
    torch.nn.utils.vector_to_parameters(flat, params)
    assert torch.allclose(fisher, fisher.T, atol=1e-6) and torch.linalg.eigvalsh(fisher).min() > -1e-6
    vector = torch.randn(len(flat), dtype=torch.float64)
    for damping in (0.0, 0.1):
        fvp = trpo.fisher_vector_product(mean_kl, params, vector, damping)
        torch.testing.assert_close(fvp, fisher @ vector + damping * vector, rtol=1e-5, atol=1e-7)


def test_line_search_rejects_steps_that_break_the_kl_limit_or_do_not_improve():
    agent, params, mean_kl = _tiny_agent_and_kl(gym.spaces.Discrete(3))
    obs = torch.randn(16, 3, dtype=torch.float64)
    actions = torch.randint(0, 3, (16,)).double()
    with torch.no_grad():
        _, old_logprobs, _, _ = agent.get_action_and_value(obs, actions)
    advantages = torch.randn(16, dtype=torch.float64)

    def surrogate():
        return trpo.surrogate_objective(agent, obs, actions, old_logprobs, advantages)

    flat = torch.nn.utils.parameters_to_vector(params).detach().clone()
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate(), params)])
    uphill = gradient / gradient.norm()

    # a long step up the surrogate's gradient: the full step breaks the KL limit, a shorter one is accepted
    full_step = 5.0 * uphill
    with torch.no_grad():
        trpo.set_params(params, flat + full_step)
        kl_of_full_step = mean_kl().item()
        trpo.set_params(params, flat)
    max_kl = kl_of_full_step / 10
    fraction = trpo.line_search(params, full_step, surrogate, mean_kl, max_kl, coeff=0.5, iters=20)
    assert 0.0 < fraction < 1.0
    with torch.no_grad():
        assert mean_kl() <= max_kl
    accepted = torch.nn.utils.parameters_to_vector(params).detach()
    torch.testing.assert_close(accepted, flat + fraction * full_step)

    # a limit that no fraction of the step meets: the old parameters come back
    with torch.no_grad():
        trpo.set_params(params, flat)
    assert trpo.line_search(params, full_step, surrogate, mean_kl, max_kl=1e-12, coeff=0.5, iters=5) == 0.0
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(params).detach(), flat)

    # a step downhill lowers the surrogate at every fraction: rejected however large the trust region
    assert trpo.line_search(params, -0.01 * uphill, surrogate, mean_kl, max_kl=1e9, coeff=0.5, iters=10) == 0.0
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(params).detach(), flat)


def test_shared_rmsprop_step_matches_torch_rmsprop():
    torch.manual_seed(0)
    params = [torch.randn(5, 3), torch.randn(3)]
    reference = [p.clone().requires_grad_() for p in params]
    optimizer = torch.optim.RMSprop(reference, lr=1e-2, alpha=0.99, eps=1e-5)
    square_avgs = [torch.zeros_like(p) for p in params]
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        for param, grad in zip(reference, grads, strict=True):
            param.grad = grad.clone()
        optimizer.step()
        a3c.shared_rmsprop_step(params, grads, square_avgs, lr=1e-2, alpha=0.99, eps=1e-5)
    for param, expected in zip(params, reference, strict=True):
        torch.testing.assert_close(param, expected.detach())


def test_a3c_worker_pushes_its_gradients_into_the_shared_parameters(tmp_path):
    # one worker, run in this process, on a shared agent: after its updates the shared parameters have moved
    args = a3c.Args(total_timesteps=200, num_steps=10, log_dir=str(tmp_path))
    torch.manual_seed(0)
    shared_agent = a3c.Agent(4, CARTPOLE.action_space)
    before = [p.detach().clone() for p in shared_agent.parameters()]
    square_avgs = [torch.zeros_like(p) for p in shared_agent.parameters()]
    global_step, messages = multiprocessing.Value("q", 0), queue.Queue()
    a3c.worker(0, args, str(tmp_path), shared_agent, square_avgs, global_step, messages)
    kinds = []
    while not messages.empty():
        kinds.append(messages.get()[0])
    assert kinds[-1] == "done" and "error" not in kinds and "episode" in kinds
    assert global_step.value == 200
    for param, old in zip(shared_agent.parameters(), before, strict=True):
        assert not torch.equal(param, old)
    assert all((avg > 0).any() for avg in square_avgs)  # the shared RMSProp statistics were updated too


def _children_of_this_process() -> set:
    """Live child processes of this one (multiprocessing's resource tracker, a helper that lives as long as this
    process does, aside). Tests compare it before and after a run: helpers an earlier test in the same pytest worker
    left behind on purpose (wandb's service process lives until the interpreter exits) are not the run's."""
    children = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline") as f:
                cmdline = f.read()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and "resource_tracker" not in cmdline:
            children.add((int(pid), cmdline))
    return children


def test_a3c_with_two_workers_finishes_and_leaves_no_process(tmp_path):
    before = _children_of_this_process()
    summary = a3c.train(smoke_args("a3c", tmp_path, num_workers=2, total_timesteps=2_000))
    assert summary["total_timesteps"] == 2_000
    assert not _children_of_this_process() - before


def test_a3c_worker_error_reaches_the_user_and_leaves_no_process(tmp_path, capsys):
    args = smoke_args("a3c", tmp_path, num_workers=2, total_timesteps=5_000, env_id="fake_envs:RaisingCartPole-v1")
    before = _children_of_this_process()
    with pytest.raises(SystemExit) as exit_info:
        a3c.train(args)
    assert exit_info.value.code == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "worker" in last_line and "RuntimeError: the env broke after 100 steps" in last_line
    assert not _children_of_this_process() - before


@pytest.mark.parametrize("name", ["reinforce", "a2c", "a3c", "trpo"])
def test_box_actions_on_pendulum(name, tmp_path):
    # the Gaussian branch: a short Pendulum run trains the log standard deviations and saves them, and its evaluation
    # plays the mean action: the saved model replays the evaluation's returns exactly, whatever the random state (a
    # sampled action, with σ = e^(log σ) ≈ 1 on a [−2, 2] action range, would change them)
    module = load_algo(name)
    args = smoke_args(name, tmp_path, env_id="Pendulum-v1", save_model=True)
    summary = module.train(args)
    assert summary["env_id"] == "Pendulum-v1" and np.isfinite(summary["eval_return_mean"])
    weights = torch.load(model_file(only_run_dir(tmp_path), name))["agent"]
    assert weights["actor_logstd"].shape == (1, 1) and (weights["actor_logstd"] != 0).all()
    device = torch.device("cuda" if getattr(args, "cuda", False) and torch.cuda.is_available() else "cpu")
    agent = module.Agent(3, PENDULUM.action_space).to(device)
    agent.load_state_dict(weights)
    for torch_seed in (0, 1):
        torch.manual_seed(torch_seed)
        returns = module.evaluate(agent, None, "Pendulum-v1", args.eval_episodes, args.seed + 10_000, device)
        assert np.mean(returns) == summary["eval_return_mean"] and np.std(returns) == summary["eval_return_std"]


@pytest.mark.parametrize("name", ["reinforce", "a2c", "a3c"])
def test_the_loss_moves_the_gaussian_log_std_as_its_gradient_says(name):
    # ∂/∂ log σ of −mean(Ψ log N(a; μ, σ²)) is −mean(Ψ ((a − μ)²/σ² − 1)), by hand: weights Ψ that favour actions far
    # from the mean make a gradient step widen the policy, weights that favour near ones narrow it
    module = load_algo(name)
    torch.manual_seed(0)
    agent = module.Agent(3, PENDULUM.action_space)
    obs = torch.randn(256, 3)
    with torch.no_grad():
        actions, _, _, _ = agent.get_action_and_value(obs)
        z_squared = ((actions - agent.actor(obs)) / agent.actor_logstd.exp()).squeeze(-1) ** 2
    for sign in (1.0, -1.0):
        weights = sign * (z_squared - 1.0)
        agent.zero_grad()
        if name == "reinforce":  # the weights as returns, without a baseline or standardization
            args = module.Args(baseline=False, norm_returns=False)
            loss, _ = module.policy_gradient_loss(agent, dict(obs=obs, actions=actions, returns=weights), args)
        else:  # the weights as advantages, without an entropy bonus; the critic's targets do not touch log σ
            batch = dict(obs=obs, actions=actions, advantages=weights, returns=torch.zeros(256))
            loss, _ = module.a2c_loss(agent, batch, module.Args(ent_coef=0.0, norm_adv=False))
        loss.backward()
        expected = -(weights * (z_squared - 1.0)).mean()
        torch.testing.assert_close(agent.actor_logstd.grad, expected.reshape(1, 1))
        assert sign * agent.actor_logstd.grad.item() < 0


# Learning tests. Thresholds from the issue; CartPole-v1's returns are capped at 500 and a random policy scores ≈ 22.
# Five seeds of each default command (`python algos/<name>.py --seed N`, N = 1..5) before settling, listed per test.


@pytest.mark.learning
def test_reinforce_learns_cartpole(tmp_path):
    # ≥ 400 within 250k steps. Seeds 1-5: 500, 500, 500, 500, 500 (reward-to-go, baseline, standardized weights,
    # 8 episodes per batch, Adam 1e-3).
    assert_learns(reinforce, tmp_path, 250_000, 400)


@pytest.mark.learning
def test_a2c_learns_cartpole(tmp_path):
    # ≥ 400 within 300k steps. Seeds 1-5: 500, 500, 500, 500, 500 with the learning rate annealed; with it constant
    # (SB3's CartPole setting) 341, 119, 500, 500, 500: the late updates of a 5-step batch shake a finished policy.
    assert_learns(a2c, tmp_path, 300_000, 400)


@pytest.mark.learning
def test_a3c_learns_cartpole(tmp_path):
    # ≥ 300 within 300k steps, with one worker process: the worker process, the shared parameters and the shared RMSProp
    # are all used, and the same seed repeats the run exactly (three runs of seed 1 logged the same 925 episodes).
    # With two workers (the default) the order their updates land in is the scheduler's, so a seed does not fix the
    # result: at seed 1 this test ended at 60.8 in CI and at 176.0 in a fresh-clone run of .ci/run, where the suite's
    # other tests shared the cores.
    # One worker, seeds 1-5: 500, 500, 500, 500, 500; seeds 11-15: 500, 500, 500, 500, 314.7. Two workers, seeds 1-8,
    # two runs at a time on 2 cores: 500, 500, 173.8, 500, 500, 500, 184.3, 500. Most runs, one worker or two, fall
    # from 500 to below 100 once and climb back; a run whose learning rate has annealed too far by then stays low (see
    # benchmarks/NOTES.md#a3cpy).
    assert_learns(a3c, tmp_path, 300_000, 300, num_workers=1)


@pytest.mark.learning
def test_trpo_learns_cartpole(tmp_path):
    # ≥ 450 within 100k steps (random ≈ 22, maximum 500), at the defaults: the RL Zoo's CartPole settings (2 envs × 512
    # steps, δ = 0.01, λ = 0.98, damping 1e-3, 20 critic epochs) with δ annealed linearly to 0. Seeds 1-10, one thread:
    # 500.0 each. With a constant δ (--no-anneal-kl): 500, 500, 418.6, 500, 500, 500, 500, 500, 476.7, 500 (and 305.4 at
    # seed 4 on an earlier day): late steps of full size shook policies that had already learned.
    assert_learns(trpo, tmp_path, 100_000, 450)
