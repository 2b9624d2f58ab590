"""PPO: GAE and the clipped loss against hand-computed values; rollouts, updates, state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mario.algos.base import Transition
from mario.algos.ppo.algorithm import PPO, gae, ppo_loss
from mario.config import build_config
from mario.models import ActorCritic


def test_gae_matches_a_hand_computed_rollout() -> None:
    """Two envs, three steps; env 1's episode ends (done) at step 1: no bootstrap across it."""
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    values = torch.tensor([[0.5, 1.0], [0.4, 1.5], [0.3, 0.2]])
    dones = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    next_value = torch.tensor([0.6, 0.7])
    adv, ret = gae(rewards, values, dones, next_value, gamma, lam)
    # env 0: deltas d2 = 1 + .9*.6 - .3 = 1.24; d1 = 0 + .9*.3 - .4 = -.13;
    # d0 = 1 + .9*.4 - .5 = .86; A2 = 1.24; A1 = -.13 + .72*1.24 = .7628;
    # A0 = .86 + .72*.7628 = 1.409216
    # env 1: d2 = 1 + .9*.7 - .2 = 1.43; d1 = 2 + 0 - 1.5 = .5 (done: no bootstrap);
    # d0 = 0 + .9*1.5 - 1 = .35; A2 = 1.43; A1 = .5 (done cuts the sum); A0 = .35 + .72*.5 = .71
    expected = torch.tensor([[1.409216, 0.71], [0.7628, 0.5], [1.24, 1.43]])
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ret, expected + values, rtol=0, atol=1e-6)


def test_ppo_loss_matches_hand_computed_values() -> None:
    old_logprob = torch.log(torch.tensor([0.5, 0.5]))
    new_logprob = torch.log(torch.tensor([0.6, 0.3]))  # ratios 1.2 and 0.6
    advantages = torch.tensor([1.0, -2.0])
    new_value = torch.tensor([1.0, 0.0])
    old_value = torch.tensor([0.5, 0.5])
    returns = torch.tensor([2.0, 1.0])
    entropy = torch.tensor([0.7, 0.5])
    inputs = (new_logprob, old_logprob, advantages, new_value, old_value, returns, entropy)
    coefs = {"clip_coef": 0.1, "vf_coef": 0.5, "ent_coef": 0.01}
    loss, parts = ppo_loss(*inputs, **coefs)
    # sample 0: max(-1*1.2, -1*1.1) = -1.1; sample 1: max(2*0.6, 2*0.9) = 1.8 -> mean 0.35
    assert parts["policy_loss"].item() == pytest.approx(0.35)
    # 0.5 * mean((1-2)^2, (0-1)^2) = 0.5
    assert parts["value_loss"].item() == pytest.approx(0.5)
    assert parts["entropy"].item() == pytest.approx(0.6)
    assert loss.item() == pytest.approx(0.35 - 0.01 * 0.6 + 0.5 * 0.5)
    assert parts["clip_fraction"].item() == pytest.approx(1.0)  # |r-1| = .2 and .4 > .1
    kl = np.mean([(1.2 - 1) - math.log(1.2), (0.6 - 1) - math.log(0.6)])
    assert parts["approx_kl"].item() == pytest.approx(kl, rel=1e-6)
    # clipped value loss: v_clipped = 0.5 + clamp(0.5, -.1, .1) = 0.6 for sample 0 -> (0.6-2)^2
    _, clipped = ppo_loss(*inputs, **coefs, clip_vloss=True)
    assert clipped["value_loss"].item() == pytest.approx(0.5 * np.mean([1.4**2, 1.0**2]))


def _ppo(**overrides: object) -> PPO:
    cfg = build_config(
        {"algo": "ppo", "num_envs": 2, "n_steps": 4, "minibatches": 2, "epochs": 2, **overrides}
    )
    torch.manual_seed(0)
    return PPO(cfg.algorithm, cfg.context(5, torch.device("cpu")))


def _obs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)


def test_a_rollout_fills_then_updates_and_truncation_bootstraps() -> None:
    ppo = _ppo(reward_scale=1.0, gamma=0.5)
    before = {k: v.clone() for k, v in ppo.net.state_dict().items()}
    obs = _obs(0)
    for t in range(4):
        actions = ppo.act(obs, t * 2)
        nxt = _obs(t + 1)
        truncated = np.array([t == 1, False])
        ppo.observe(Transition(obs, actions, np.ones(2), np.zeros(2, bool), truncated, nxt), t)
        if t == 1:  # the truncated env's reward got gamma * V(final obs)
            _, v_final = ppo.net(torch.from_numpy(nxt[:1]))
            assert ppo.rewards[1, 0].item() == pytest.approx(1 + 0.5 * v_final.item(), rel=1e-5)
            assert ppo.rewards[1, 1].item() == 1.0 and ppo.dones[1].tolist() == [1.0, 0.0]
        if t < 3:
            ppo.learn(t * 2)
            assert ppo.updates == 0  # the rollout is not full yet
        obs = nxt
    ppo.learn(8)
    assert ppo.updates == 2 * 2  # epochs x minibatches
    assert any(not torch.equal(before[k], v) for k, v in ppo.net.state_dict().items())
    stats = ppo.stats()
    assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "lr"} <= set(
        stats
    )
    assert all(math.isfinite(v) for v in stats.values())


def test_state_round_trip_and_the_policy() -> None:
    ppo = _ppo()
    obs = _obs(1)
    for t in range(4):
        ppo.observe(
            Transition(obs, ppo.act(obs, t), np.ones(2), np.zeros(2, bool), np.zeros(2, bool), obs),
            t,
        )
    ppo.learn(8)
    state = ppo.state_dict()
    other = _ppo()
    other.load_state_dict(state)
    for a, b in zip(ppo.net.parameters(), other.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert other.updates == ppo.updates
    actions, explained = other.policy().act(obs)
    assert actions.shape == (2,) and explained is not None
    assert explained[0].kind == "π" and sum(explained[0].values) == pytest.approx(1.0)
    assert explained[0].state_value is not None
    greedy = np.argmax(explained[0].values)
    assert actions[0] == greedy  # explore=0: the most probable action


def test_actor_critic_shapes_and_init() -> None:
    torch.manual_seed(0)
    net = ActorCritic(7)
    logits, value = net(torch.zeros(3, 4, 84, 84, dtype=torch.uint8))
    assert logits.shape == (3, 7) and value.shape == (3,)
    probs = torch.softmax(logits, dim=1)
    assert torch.allclose(probs, torch.full_like(probs, 1 / 7), atol=1e-3)  # near uniform
    narrow = ActorCritic(7, width=0.25)  # a quarter of the channels and hidden units
    assert [narrow.features[0].out_channels, narrow.hidden[0].out_features] == [8, 128]
    assert [t.shape for t in narrow(torch.zeros(3, 4, 84, 84, dtype=torch.uint8))] == [(3, 7), (3,)]
