"""algos/ppo.py (and the GAE it shares with ppo_continuous.py, a2c.py, a3c.py and trpo.py, and the loss it shares with
ppo_continuous.py): GAE against the λ-return's definition, truncation handling, the clipped objective and the value
loss against hand-worked numbers, the categorical policy's math, and a learning test."""

import numpy as np
import pytest
import torch
from helpers import assert_learns, load_algo

ppo = load_algo("ppo")
PPO_MODULES = [ppo, load_algo("ppo_continuous")]
GAE_MODULES = PPO_MODULES + [load_algo(name) for name in ("a2c", "a3c", "trpo")]


def brute_force_gae(rewards, values, next_values, terminations, dones, gamma, lam):
    """Â_t = G^λ_t − V(s_t), with G^λ_t the λ-return written out from its definition: a (1 − λ)λ^(n−1)-weighted sum
    of the n-step returns G^(n)_t = Σ_{k<n} γ^k r_{t+k} + γ^n V(s_{t+n}) over the steps left in the episode segment,
    the last n-step return taking the remaining weight. A segment ends where the episode ends or the rollout does;
    V(s_{t+n}) is next_values of the segment's step t+n−1, and 0 when that step terminated."""
    num_steps, num_envs = rewards.shape
    advantages = np.zeros((num_steps, num_envs))
    for env in range(num_envs):
        for t in range(num_steps):
            end = t
            while not dones[end, env] and end < num_steps - 1:
                end += 1
            length = end - t + 1
            n_step_returns = []
            for n in range(1, length + 1):
                last = t + n - 1
                discounted = sum(gamma**k * rewards[t + k, env] for k in range(n))
                bootstrap = gamma**n * next_values[last, env] * (1.0 - terminations[last, env])
                n_step_returns.append(discounted + bootstrap)
            weights = [(1 - lam) * lam ** (n - 1) for n in range(1, length)] + [lam ** (length - 1)]
            advantages[t, env] = np.dot(weights, n_step_returns) - values[t, env]
    return advantages


def random_rollout(rng, num_steps=12, num_envs=3):
    rewards = rng.normal(size=(num_steps, num_envs))
    values = rng.normal(size=(num_steps, num_envs))
    terminations = (rng.random((num_steps, num_envs)) < 0.15).astype(float)
    truncations = ((rng.random((num_steps, num_envs)) < 0.15) & (terminations == 0)).astype(float)
    dones = np.maximum(terminations, truncations)
    # as in a real rollout: V(s') is the next stored value within an episode, and a value of its own (the final
    # observation's, or the observation after the rollout) where the episode ended or the rollout ends
    next_values = np.concatenate([values[1:], rng.normal(size=(1, num_envs))])
    next_values = np.where(dones == 1, rng.normal(size=(num_steps, num_envs)), next_values)
    return rewards, values, next_values, terminations, dones


@pytest.mark.parametrize("module", GAE_MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("seed", range(5))
def test_compute_gae_matches_the_lambda_return_definition(module, seed):
    rng = np.random.default_rng(seed)
    rollout = random_rollout(rng)
    gamma, lam = 0.97, 0.9
    advantages, returns = module.compute_gae(*(torch.tensor(x) for x in rollout), gamma, lam)
    expected = brute_force_gae(*rollout, gamma, lam)
    np.testing.assert_allclose(advantages.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(returns.numpy(), expected + rollout[1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("module", GAE_MODULES, ids=lambda m: m.__name__)
def test_compute_gae_bootstraps_truncation_but_not_termination(module):
    # one env, three steps; the episode ends at step 1 and a new one starts at step 2
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.tensor([[2.0], [3.0], [4.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    # V(s') of each step: V(s_1) = 3 stored; V(final obs) = 5 at the episode end; V(obs after the rollout) = 6
    next_values = torch.tensor([[3.0], [5.0], [6.0]])

    truncated, _ = module.compute_gae(rewards, values, next_values, torch.zeros(3, 1), dones, gamma, lam)
    terminated, _ = module.compute_gae(rewards, values, next_values, dones, dones, gamma, lam)
    # step 2: δ = 1 + 0.9·6 − 4 = 2.4, whatever happened before it
    assert truncated[2, 0].item() == pytest.approx(2.4) and terminated[2, 0].item() == pytest.approx(2.4)
    # step 1 truncated: δ = 1 + 0.9·5 − 3 = 2.5; terminated: δ = 1 − 3 = −2; neither takes step 2's advantage
    assert truncated[1, 0].item() == pytest.approx(2.5)
    assert terminated[1, 0].item() == pytest.approx(-2.0)
    # step 0: δ = 1 + 0.9·3 − 2 = 1.7, plus γλ times step 1's advantage
    assert truncated[0, 0].item() == pytest.approx(1.7 + 0.45 * 2.5)
    assert terminated[0, 0].item() == pytest.approx(1.7 + 0.45 * -2.0)


class FixedPolicy:
    """Stands in for the agent in ppo_loss: the new log-probabilities, entropies and values it reports are given."""

    def __init__(self, logprob, entropy, value):
        self.logprob, self.entropy, self.value = logprob, entropy, value

    def get_action_and_value(self, obs, actions):
        return actions, self.logprob, self.entropy, self.value


def _minibatch(old_logprob, advantages, old_values, returns) -> dict:
    n = len(advantages)
    rows = dict(logprobs=old_logprob, advantages=advantages, values=old_values, returns=returns)
    return dict(obs=torch.zeros(n, 1), actions=torch.zeros(n), **{k: torch.tensor(v).double() for k, v in rows.items()})


# ε = 0.2: (ρ, Â, min(ρ Â, clip(ρ, 0.8, 1.2) Â), whether the clipped term is the minimum, so that no gradient flows)
CLIPPED_OBJECTIVE_CASES = [
    (1.5, 1.0, 1.2, True),  # Â > 0, ρ above 1 + ε: the objective stops at 1.2 Â
    (1.1, 2.0, 2.2, False),  # Â > 0, ρ within [1 − ε, 1 + ε]: ρ Â
    (0.5, 1.0, 0.5, False),  # Â > 0, ρ below 1 − ε: ρ Â is the smaller term, not clipped
    (0.5, -1.0, -0.8, True),  # Â < 0, ρ below 1 − ε: the objective stops at 0.8 Â
    (0.9, -2.0, -1.8, False),  # Â < 0, ρ within the range: ρ Â
    (1.5, -1.0, -1.5, False),  # Â < 0, ρ above 1 + ε: ρ Â is the smaller term, not clipped
]


@pytest.mark.parametrize("module", PPO_MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("ratio,advantage,objective,clipped", CLIPPED_OBJECTIVE_CASES)
def test_ppo_loss_is_the_clipped_surrogate(module, ratio, advantage, objective, clipped):
    old_logprob = np.log(0.4)
    logprob = torch.tensor([np.log(0.4 * ratio)], dtype=torch.float64, requires_grad=True)
    agent = FixedPolicy(logprob, entropy=torch.zeros(1).double(), value=torch.zeros(1).double())
    args = module.Args(clip_coef=0.2, norm_adv=False, ent_coef=0.0, vf_coef=0.0)
    loss, stats = module.ppo_loss(agent, _minibatch([old_logprob], [advantage], [0.0], [0.0]), args)
    assert loss.item() == pytest.approx(-objective) and stats["policy_loss"].item() == pytest.approx(-objective)
    # ∂loss/∂log π(a|s) = −ρ Â where the unclipped term is the minimum, 0 where the clipped one is
    loss.backward()
    assert logprob.grad.item() == pytest.approx(0.0 if clipped else -ratio * advantage)
    assert stats["clipfrac"].item() == (1.0 if abs(ratio - 1) > 0.2 else 0.0)
    assert stats["approx_kl"].item() == pytest.approx((ratio - 1) - np.log(ratio))


@pytest.mark.parametrize("module", PPO_MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("clip_vloss,value_loss", [(False, 1.0025), (True, 1.3325)])
def test_ppo_loss_adds_the_value_loss_and_the_entropy_bonus(module, clip_vloss, value_loss):
    # V = (1.0, −0.5), V_old = (0.5, 0.0), R = (3.0, −0.4), ε = 0.2. Unclipped: (V − R)² = (4, 0.01). Clipped:
    # V_old + clip(V − V_old, −0.2, 0.2) = (0.7, −0.2), squared errors (5.29, 0.04); the larger of the two per sample
    # is (5.29, 0.04). L_V = ½ mean: 1.0025 unclipped, 1.3325 clipped.
    value = torch.tensor([1.0, -0.5], dtype=torch.float64)
    entropy = torch.tensor([1.5, 0.5], dtype=torch.float64)  # mean 1.0
    old_logprob = [np.log(0.3), np.log(0.6)]
    agent = FixedPolicy(torch.tensor(old_logprob), entropy, value)  # ρ = 1, and Â = (1, −1): L_clip = 0
    minibatch = _minibatch(old_logprob, [1.0, -1.0], [0.5, 0.0], [3.0, -0.4])
    args = module.Args(clip_coef=0.2, norm_adv=False, clip_vloss=clip_vloss, ent_coef=0.01, vf_coef=0.5)
    loss, stats = module.ppo_loss(agent, minibatch, args)
    assert stats["policy_loss"].item() == pytest.approx(0.0, abs=1e-12)
    assert stats["value_loss"].item() == pytest.approx(value_loss)
    assert stats["entropy"].item() == pytest.approx(1.0)
    assert loss.item() == pytest.approx(0.5 * value_loss - 0.01 * 1.0)


def test_categorical_policy_matches_torch_distributions():
    torch.manual_seed(0)
    agent = ppo.Agent(obs_dim=4, n_actions=3)
    for layer in agent.actor:  # larger output weights than the init's, so that the policy is far from uniform
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.normal_(layer.weight, std=1.0)
    obs = torch.randn(64, 4)
    actions = torch.randint(3, (64,))
    _, log_prob, entropy, value = agent.get_action_and_value(obs, actions)
    reference = torch.distributions.Categorical(logits=agent.actor(obs))
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    torch.testing.assert_close(value, agent.critic(obs).squeeze(-1))
    torch.testing.assert_close(agent.act_deterministic(obs), reference.probs.argmax(-1))


def test_categorical_policy_samples_from_its_probabilities():
    torch.manual_seed(0)
    agent = ppo.Agent(obs_dim=4, n_actions=3)
    torch.nn.init.normal_(agent.actor[-1].weight, std=1.0)
    obs = torch.randn(1, 4).expand(20_000, 4)
    with torch.no_grad():
        actions, *_ = agent.get_action_and_value(obs)
        probs = torch.softmax(agent.actor(obs[:1]), -1)[0]
    frequencies = torch.bincount(actions, minlength=3).float() / len(actions)
    torch.testing.assert_close(frequencies, probs, atol=0.015, rtol=0)  # 3 standard errors at p = 0.5 is 0.011


@pytest.mark.learning
def test_ppo_learns_cartpole(tmp_path):
    # Threshold from the issue: ≥ 450 (random policy ≈ 22, the maximum 500) within 100k env steps, with the default
    # hyperparameters. Five seeds of `python algos/ppo.py --seed N` (100k steps) before settling: final evaluation
    # mean 500.0 for each of seeds 1-5, and 500 as the mean of the last 10 training episodes for each.
    assert_learns(ppo, tmp_path, 100_000, 450)
