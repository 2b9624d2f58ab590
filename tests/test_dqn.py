from __future__ import annotations

import copy
import io
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mario import algos
from mario.algos.base import Transition
from mario.algos.dqn.algorithm import DQN, double_dqn_target, double_dqn_target_from_q, dqn_loss
from mario.algos.dqn.augment import random_shift
from mario.algos.dqn.exploration import EpsilonSchedule, boltzmann_actions, select_actions
from mario.algos.dqn.learner import Learner
from mario.bench.learner import bench_learner
from mario.config import build_config
from mario.models import MarioNet, net_signature
from mario.playing import pretrained


def _frames(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8, generator=g)


def _observe_40(algo: DQN, seed: int) -> None:
    """40 single-env steps of random frames, actions 0, 1, ..., 4 in turn, no reward."""
    frames = _frames(41, seed=seed).numpy()
    zero = np.zeros(1)
    for step in range(40):
        t = Transition(
            frames[step : step + 1],
            np.array([step % 5]),
            zero,
            zero > 0,
            zero > 0,
            frames[step + 1 : step + 2],
        )
        algo.observe(t, step)


def _random_batch(n: int, n_actions: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": _frames(n, seed + 1),
        "next_obs": _frames(n, seed + 2),
        "action": torch.randint(0, n_actions, (n,), generator=g),
        "reward": torch.randn(n, generator=g),
        "discount": torch.where(torch.rand(n, generator=g) < 0.2, 0.0, 0.99**3),
        "weight": torch.rand(n, generator=g) + 0.5,
    }


def _constant_net(online_q: list[float], target_q: list[float]) -> MarioNet:
    """A real MarioNet whose heads output the given Q-values whatever the input."""
    net = MarioNet(len(online_q))
    with torch.no_grad():
        for head, q in ((net.online, online_q), (net.target, target_q)):
            head.head[2].weight.zero_()
            head.head[2].bias.copy_(torch.tensor(q))
    return net


# --------------------------------------------------------------------------- Double-DQN target

REWARD = torch.tensor([1.0, 0.5, 2.0])
DISCOUNT = torch.tensor([0.9, 0.0, 0.81])  # row 1 terminated
NEXT_Q_ONLINE = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 0.0], [0.0, 1.0, 4.0]])
NEXT_Q_TARGET = torch.tensor([[10.0, 2.0, 7.0], [100.0, 100.0, 100.0], [3.0, 6.0, 5.0]])


def test_double_dqn_target_hand_case() -> None:
    y = double_dqn_target_from_q(REWARD, DISCOUNT, NEXT_Q_ONLINE, NEXT_Q_TARGET)
    # row 0: online picks a=1, target rates it 2 -> 1 + 0.9 * 2
    # row 1: terminal, discount 0 -> reward only
    # row 2: online picks a=2, target rates it 5 -> 2 + 0.81 * 5
    torch.testing.assert_close(y, torch.tensor([2.8, 0.5, 6.05]))
    vanilla = REWARD + DISCOUNT * NEXT_Q_TARGET.max(dim=1).values
    assert not torch.allclose(y, vanilla)  # 10.0 and 6.86 would be vanilla DQN's answer


def test_double_dqn_target_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\(N, A\)"):
        double_dqn_target_from_q(REWARD, DISCOUNT, NEXT_Q_ONLINE, NEXT_Q_TARGET[:, :2])
    with pytest.raises(ValueError, match=r"\(N,\)"):
        double_dqn_target_from_q(REWARD[:2], DISCOUNT, NEXT_Q_ONLINE, NEXT_Q_TARGET)


def test_double_dqn_target_uses_online_argmax_and_target_value() -> None:
    net = _constant_net([1.0, 3.0, 2.0], [10.0, 2.0, 7.0])
    y = double_dqn_target(torch.tensor([1.0, 1.0]), torch.tensor([0.9, 0.0]), _frames(2, 0), net)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 2.0, 1.0]))
    assert not y.requires_grad


# --------------------------------------------------------------------------- loss

HAND_BATCH_Q_ONLINE = [1.0, 3.0, -1.0]  # next-state argmax: action 1
HAND_BATCH_Q_TARGET = [0.0, 2.0, 10.0]  # ... rated 2.0 by the target


def _hand_batch() -> dict[str, torch.Tensor]:
    return {
        "obs": _frames(3, 1),
        "next_obs": _frames(3, 2),
        "action": torch.tensor([0, 1, 2]),
        "reward": torch.tensor([0.5, -0.5, 0.0]),
        "discount": torch.tensor([0.0, 0.5, 0.9]),
        "weight": torch.tensor([1.0, 0.5, 2.0]),
    }


def test_huber_loss_hand_case() -> None:
    net = _constant_net(HAND_BATCH_Q_ONLINE, HAND_BATCH_Q_TARGET)
    batch = _hand_batch()
    # y = [0.5, -0.5 + 0.5 * 2, 0.9 * 2] = [0.5, 0.5, 1.8]; Q(s, a) = [1, 3, -1]
    # td = [0.5, 2.5, -2.8]; huber(1) = [0.125, 2.0, 2.3]; weighted by [1, .5, 2]
    loss, info = dqn_loss(batch, net)
    assert loss.item() == pytest.approx((0.125 + 1.0 + 4.6) / 3)
    torch.testing.assert_close(info["td_abs"], torch.tensor([0.5, 2.5, 2.8]))
    assert info["q_mean"].item() == pytest.approx(1.0)
    assert not info["td_abs"].requires_grad
    # huber(2) = [0.125, 2 * (2.5 - 1), 2 * (2.8 - 1)], unweighted without "weight"
    del batch["weight"]
    loss2, _ = dqn_loss(batch, net, huber_delta=2.0)
    assert loss2.item() == pytest.approx((0.125 + 3.0 + 3.6) / 3)


def test_loss_accepts_column_shapes_and_float64() -> None:
    net = _constant_net(HAND_BATCH_Q_ONLINE, HAND_BATCH_Q_TARGET)
    batch = _hand_batch()
    columns = {k: v.unsqueeze(1) if v.dim() == 1 else v for k, v in batch.items()}  # [3, 1]
    loss_td, _ = dqn_loss(columns, net)
    loss_dict, _ = dqn_loss(batch, net)
    torch.testing.assert_close(loss_td, loss_dict)
    as_f64 = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    loss_f64, _ = dqn_loss(as_f64, net)  # NumPy-born float64 columns
    assert loss_f64.dtype == torch.float32
    torch.testing.assert_close(loss_f64, loss_dict)


def test_loss_gradient_reaches_online_only() -> None:
    torch.manual_seed(0)
    net = MarioNet(5)
    loss, _ = dqn_loss(_random_batch(4, 5), net)
    loss.backward()
    assert all(p.grad is not None for p in net.online.parameters())
    assert all(p.grad is None for p in net.target.parameters())


def test_loss_bad_batches_raise() -> None:
    net = MarioNet(3)
    batch = _random_batch(4, 3)
    with pytest.raises(ValueError, match="missing"):
        dqn_loss({k: v for k, v in batch.items() if k != "discount"}, net)
    with pytest.raises(ValueError, match="int64"):
        dqn_loss({**batch, "action": batch["action"].int()}, net)
    with pytest.raises(ValueError, match="reward"):
        dqn_loss({**batch, "reward": batch["reward"][:3]}, net)
    with pytest.raises(ValueError, match="huber_delta"):
        dqn_loss(batch, net, huber_delta=0.0)


# --------------------------------------------------------------------------- learner


def test_learner_reduces_loss_on_fixed_batch() -> None:
    torch.manual_seed(0)
    net = MarioNet(5)
    learner = Learner(net, loss_fn=dqn_loss, lr=1e-3, target_update_every=1_000)
    batch = _random_batch(16, 5)
    with torch.no_grad():
        initial, _ = dqn_loss(batch, net)
    infos = [learner.update(batch) for _ in range(15)]
    with torch.no_grad():
        final, _ = dqn_loss(batch, net)
    assert final.item() < 0.5 * initial.item()
    assert infos[0]["loss"] == pytest.approx(initial.item(), rel=1e-5)
    assert learner.updates == 15 and learner.target_syncs == 0
    info = infos[-1]
    assert isinstance(info["loss"], float) and isinstance(info["q_mean"], float)
    assert math.isfinite(info["grad_norm"]) and info["grad_norm"] > 0
    assert info["td_abs"].shape == (16,) and not info["td_abs"].requires_grad


def test_set_lr_sets_the_step_size_of_the_next_update() -> None:
    """Adam's first step moves every weight by about its rate: a learner told 1e-3 moves them
    ten times as far as one told 1e-4 on the same batch, whatever rate it was built with."""
    batch = _random_batch(16, 5)
    moves = []
    for lr in (1e-3, 1e-4):
        torch.manual_seed(0)
        net = MarioNet(5)
        before = [p.detach().clone() for p in net.online.parameters()]
        learner = Learner(net, loss_fn=dqn_loss, lr=0.5, target_update_every=1_000)
        learner.set_lr(lr)
        learner.update(batch)
        moves.append(
            max(
                (p - b).abs().max().item()
                for p, b in zip(net.online.parameters(), before, strict=True)
            )
        )
        assert moves[-1] == pytest.approx(lr, rel=0.01)
    assert moves[0] == pytest.approx(10 * moves[1], rel=0.01)


def test_learner_grad_norm_is_pre_clip_norm() -> None:
    torch.manual_seed(0)
    net = MarioNet(5)
    batch = _random_batch(8, 5)
    reference = copy.deepcopy(net)
    loss, _ = dqn_loss(batch, reference)
    loss.backward()
    expected = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in reference.online.parameters()])
    ).item()
    info = Learner(net, loss_fn=dqn_loss, grad_clip=1e-3).update(batch)
    assert info["grad_norm"] == pytest.approx(expected, rel=1e-4)
    assert expected > 1e-3  # so the clip was active


def test_learner_hard_sync_every_n_updates() -> None:
    torch.manual_seed(0)
    net = MarioNet(4)
    learner = Learner(net, loss_fn=dqn_loss, lr=1e-3, target_update_every=3)
    batch = _random_batch(4, 4)
    synced = []
    for i in range(1, 8):
        synced.append(learner.update(batch)["target_synced"])
        same = all(
            torch.equal(o, t)
            for o, t in zip(net.online.parameters(), net.target.parameters(), strict=True)
        )
        assert same == (i in (3, 6)), i
    assert synced == [False, False, True, False, False, True, False]
    assert learner.target_syncs == 2 and learner.updates == 7


def test_learner_soft_update_every_update() -> None:
    torch.manual_seed(0)
    net = MarioNet(4)
    learner = Learner(net, loss_fn=dqn_loss, lr=1e-3, target_sync="soft", tau=0.1)
    batch = _random_batch(4, 4)
    for _ in range(2):
        target_before = [p.clone() for p in net.target.parameters()]
        assert learner.update(batch)["target_synced"] is False
        for t0, o, t in zip(
            target_before, net.online.parameters(), net.target.parameters(), strict=True
        ):
            torch.testing.assert_close(t, 0.9 * t0 + 0.1 * o)
    assert learner.target_syncs == 0


def test_learner_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    net = MarioNet(4)
    learner = Learner(net, loss_fn=dqn_loss, lr=1e-3, target_update_every=3)
    batches = [_random_batch(8, 4, seed=s) for s in range(4)]
    learner.update(batches[0])
    learner.update(batches[1])

    buffer = io.BytesIO()
    torch.save({"net": net.state_dict(), "learner": learner.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    torch.manual_seed(99)  # a different init, fully overwritten by the load
    net2 = MarioNet(4)
    learner2 = Learner(net2, loss_fn=dqn_loss, lr=1e-3, target_update_every=3)
    net2.load_state_dict(saved["net"])
    learner2.load_state_dict(saved["learner"])
    assert learner2.updates == 2

    for batch in batches[2:]:
        a, b = learner.update(batch), learner2.update(batch)
        assert a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"]
        assert a["target_synced"] == b["target_synced"]
        torch.testing.assert_close(a["td_abs"], b["td_abs"], rtol=0, atol=0)
    assert learner2.target_syncs == learner.target_syncs == 1
    for k, v in net.state_dict().items():
        torch.testing.assert_close(net2.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing"):
        learner2.load_state_dict({"optimizer": saved["learner"]["optimizer"]})


def test_learner_amp_and_compile_are_cuda_only_and_args_checked() -> None:
    learner = Learner(MarioNet(3), loss_fn=dqn_loss, amp=True, compile=True)
    assert learner.amp is False and learner.compiled is False
    for kwargs, match in (
        ({"lr": 0.0}, "lr"),
        ({"target_sync": "polyak"}, "target_sync"),
        ({"target_update_every": 0}, "target_update_every"),
        ({"tau": 0.0}, "tau"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"adam_eps": 0.0}, "adam_eps"),
    ):
        with pytest.raises(ValueError, match=match):
            Learner(MarioNet(3), loss_fn=dqn_loss, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- exploration


@pytest.mark.parametrize("kind", ["linear", "exponential"])
def test_epsilon_schedule_endpoints_and_monotone(kind: str) -> None:
    s = EpsilonSchedule(start=1.0, end=0.05, decay_steps=1_000, kind=kind)  # type: ignore[arg-type]
    assert s.value(0) == pytest.approx(1.0)
    assert s.value(1_000) == pytest.approx(0.05)
    assert s.value(10**9) == pytest.approx(0.05)
    values = [s.value(step) for step in range(0, 3_000, 7)]
    assert all(b <= a for a, b in itertools.pairwise(values))
    assert min(values) >= 0.05
    assert values[1] < values[0]  # decays from the first steps on


def test_epsilon_schedule_shapes() -> None:
    linear = EpsilonSchedule(1.0, 0.1, 100, "linear")
    assert linear.value(50) == pytest.approx(0.55)
    expo = EpsilonSchedule(1.0, 0.01, 100, "exponential")
    assert expo.value(50) == pytest.approx(0.1)  # geometric midpoint
    for kwargs, match in (
        ({"start": 0.1, "end": 0.5}, "end <= start"),
        ({"start": 1.5}, "start"),
        ({"decay_steps": 0}, "decay_steps"),
        ({"kind": "cosine"}, "kind"),
        ({"end": 0.0, "kind": "exponential"}, "end > 0"),
    ):
        with pytest.raises(ValueError, match=match):
            EpsilonSchedule(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step"):
        linear.value(-1)


def _q_rows(n: int, n_actions: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, n_actions, generator=torch.Generator().manual_seed(seed))


def test_epsilon_zero_is_argmax() -> None:
    q = _q_rows(500, 7)
    actions = select_actions(q, 0.0, torch.Generator().manual_seed(1))
    assert actions.dtype == torch.int64
    assert torch.equal(actions, q.argmax(dim=1))


def test_epsilon_one_is_uniform() -> None:
    n, n_actions = 60_000, 6
    q = torch.zeros(n, n_actions)
    q[:, 2] = 1.0  # greedy would always pick 2
    actions = select_actions(q, 1.0, torch.Generator().manual_seed(1))
    counts = torch.bincount(actions, minlength=n_actions).double()
    expected = n / n_actions
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 20.5  # chi-square, 5 degrees of freedom, p = 0.001


def test_epsilon_mix_and_per_row_epsilon() -> None:
    n, n_actions = 60_000, 6
    q = torch.zeros(n, n_actions)
    q[:, 2] = 1.0
    g = torch.Generator().manual_seed(2)
    greedy_share = (select_actions(q, 0.3, g) == 2).double().mean().item()
    assert greedy_share == pytest.approx(0.7 + 0.3 / n_actions, abs=0.01)
    eps = torch.cat([torch.zeros(n // 2), torch.ones(n // 2)])
    actions = select_actions(q, eps, g)
    assert (actions[: n // 2] == 2).all()
    assert (actions[n // 2 :] == 2).double().mean().item() == pytest.approx(1 / 6, abs=0.01)
    same = select_actions(q[:100], 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(same, select_actions(q[:100], 0.5, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="epsilon"):
        select_actions(q, 1.5, g)
    with pytest.raises(ValueError, match="epsilon"):
        select_actions(q, torch.zeros(3), g)
    with pytest.raises(ValueError, match="q_values"):
        select_actions(q[0], 0.1, g)


def test_boltzmann_tiny_temperature_is_argmax() -> None:
    q = torch.arange(2_000 * 5, dtype=torch.float32).reshape(2_000, 5) % 7 / 10
    q = q[torch.randperm(2_000, generator=torch.Generator().manual_seed(0))]
    actions = boltzmann_actions(q, 1e-6, torch.Generator().manual_seed(1))
    assert torch.equal(actions, q.argmax(dim=1))


def test_boltzmann_samples_softmax() -> None:
    n = 60_000
    q = torch.tensor([0.0, 1.0, 2.0]).expand(n, 3)
    actions = boltzmann_actions(q, 1.0, torch.Generator().manual_seed(1))
    freq = torch.bincount(actions, minlength=3).double() / n
    torch.testing.assert_close(freq, torch.softmax(q[0].double(), 0), rtol=0, atol=0.01)
    hot = boltzmann_actions(q, 1e3, torch.Generator().manual_seed(1))
    freq_hot = torch.bincount(hot, minlength=3).double() / n
    torch.testing.assert_close(freq_hot, torch.full((3,), 1 / 3).double(), rtol=0, atol=0.01)
    with pytest.raises(ValueError, match="temperature"):
        boltzmann_actions(q, 0.0)


# --------------------------------------------------------------------------- benchmark


def test_bench_learner_rows() -> None:
    rows = bench_learner(
        batch_sizes=(2, 4), steps=1, repeats=1, warmup=0, n_actions=3, cuda_graph=True
    )
    assert [r["batch_size"] for r in rows] == [2, 4]
    for r in rows:
        assert r["device"] == "cpu" and r["compiled"] is False
        assert r["cuda_graph"] is False  # asked for, but CUDA graphs exist only on CUDA
        assert r["warmup_s"] >= 0 and r["ms_per_update"] == pytest.approx(1e3 / r["updates_per_s"])
        assert r["updates_per_s"] > 0
        assert r["samples_per_s"] == pytest.approx(r["updates_per_s"] * r["batch_size"])
    with pytest.raises(ValueError, match="batch_sizes"):
        bench_learner(batch_sizes=(0,))
    with pytest.raises(ValueError, match="steps"):
        bench_learner(steps=0)


def test_learner_unsynced_update_returns_the_same_stats_as_tensors() -> None:
    """sync=False (the training loop's, so GPU updates can queue) changes nothing but the
    return type: same stats, same learning."""
    batch = _random_batch(16, 5)
    results = []
    for sync in (True, False):
        torch.manual_seed(0)
        learner = Learner(MarioNet(5), loss_fn=dqn_loss, lr=1e-3)
        results.append([learner.update(batch, sync=sync) for _ in range(3)])
    for synced, unsynced in zip(*results, strict=True):
        assert "loss" not in unsynced and unsynced["stats"].shape == (3,)
        assert not unsynced["stats"].requires_grad
        expected = [synced["loss"], synced["q_mean"], synced["grad_norm"]]
        assert unsynced["stats"].tolist() == pytest.approx(expected, rel=1e-6)


def test_a_checkpoint_of_a_cuda_graphed_learner_loads_on_cpu() -> None:
    """A GPU run's optimizer state says ``capturable=True`` (CUDA graphs need it), and
    ``Optimizer.load_state_dict`` copies the saver's flags: the loading learner sets the flag
    to what it uses itself (off on CPU), and trains on."""
    torch.manual_seed(0)
    saver = Learner(MarioNet(3), loss_fn=dqn_loss, cuda_graph=True)
    assert saver.cuda_graph is False  # CPU: eager
    saver.update(_random_batch(4, 3))
    state = saver.state_dict()
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True  # as a graphed CUDA learner saves it
    loader = Learner(MarioNet(3), loss_fn=dqn_loss, cuda_graph=True)
    loader.load_state_dict(state)
    assert all(g["capturable"] is False for g in loader.optimizer.param_groups)
    out = loader.update(_random_batch(4, 3, seed=1))
    assert math.isfinite(out["loss"]) and loader.updates == 2


def _off_greedy_rates(overrides: dict, steps: int, *floors: np.ndarray | None) -> list[np.ndarray]:
    """How often each of 4 envs' training actions differ from the greedy ones over ``steps``
    calls of ``DQN.act`` on one observation batch: one array per exploration floor."""
    from mario.algos.dqn.algorithm import DQN
    from mario.config import build_config

    cfg = build_config({"num_envs": 4, "burn_in": 0, **overrides})
    torch.manual_seed(0)
    dqn = DQN(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    obs = np.random.default_rng(0).integers(0, 256, (4, 4, 84, 84), dtype=np.uint8)
    greedy, _ = dqn.policy().act(obs)
    rates = []
    for floor in floors:
        off = np.zeros(4)
        for step in range(steps):
            off += dqn.act(obs, step, floor) != greedy
        rates.append(off / steps)
    return rates


def test_ape_x_spread_gives_each_env_its_own_epsilon() -> None:
    (rates,) = _off_greedy_rates({"eps_start": 0.5, "eps_end": 0.5, "eps_spread": 7.0}, 400, None)
    # random actions hit the greedy one 1/5 of the time
    expected = 0.8 * 0.5 ** (1 + 7 * np.arange(4) / 3)  # 0.4, 0.08, 0.016, 0.003
    assert abs(rates[0] - expected[0]) < 0.08 and rates[-1] < 0.03
    assert rates[0] > rates[1] > rates[3]


def test_an_exploration_floor_raises_epsilon_where_it_is_set() -> None:
    """The start archive's episodes ask for ε >= archive_eps (LocalCollector.explore_floor)."""
    floor = np.array([0.5, 0.0, 0.5, 0.0])
    rates, plain = _off_greedy_rates({"eps_start": 0.01, "eps_end": 0.01}, 400, floor, None)
    # 0.8 * 0.5 = 0.4 where archived, 0.8 * 0.01 elsewhere
    assert abs(rates[0] - 0.4) < 0.08 and abs(rates[2] - 0.4) < 0.08
    assert rates[1] < 0.04 and rates[3] < 0.04
    assert plain.max() < 0.04  # without a floor every env follows the schedule


# --------------------------------------------------------------------------- DrQ's shifts


def _moved(frames: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(C, H, W) ``frames`` moved by (dy, dx) with the edges repeated, written out with NumPy."""
    pad = max(abs(dy), abs(dx))
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    h, w = frames.shape[1:]
    return padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w]


def test_random_shifts_move_each_stack_as_one_picture_and_keep_the_band() -> None:
    frames = _frames(64, seed=5)
    moved = random_shift(frames, 4, keep_top=4, generator=torch.Generator().manual_seed(0))
    assert moved.shape == frames.shape and moved.dtype == torch.uint8
    assert torch.equal(moved[:, :, :4], frames[:, :, :4])  # the previous action's band stays
    shifts = set()
    for before, after in zip(frames.numpy(), moved.numpy(), strict=True):
        found = [
            (dy, dx)
            for dy, dx in itertools.product(range(-4, 5), repeat=2)
            if np.array_equal(after[:, 4:], _moved(before[:, 4:], dy, dx))  # all 4 frames alike
        ]
        assert len(found) == 1, found
        shifts.add(found[0])
    assert {dy for dy, _ in shifts} == {dx for _, dx in shifts} == set(range(-4, 5))
    assert random_shift(frames, 0) is frames
    whole = random_shift(frames, 2, generator=torch.Generator().manual_seed(1))  # no band
    assert not torch.equal(whole[:, :, :4], frames[:, :, :4])


def test_dqn_learns_from_shifted_stacks_when_asked() -> None:
    """``augment_shift``: every update sees its batch's ``obs`` and ``next_obs`` moved (each by
    its own shifts), the rest of the batch and the previous action's band as sampled."""
    values = {"augment_shift": 4, "prev_action": True, "num_envs": 1, "burn_in": 0}
    cfg = build_config({**values, "replay_size": 200, "batch_size": 8, "n_step": 1})
    algo = algos.get("dqn").make(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    assert isinstance(algo, DQN)
    pairs: list[tuple[dict, dict]] = []  # (as sampled, as learned from)
    sample, update = algo.replay.sample, algo.learner.update

    def sampled(n: int) -> dict:
        pairs.append((sample(n), {}))
        return dict(pairs[-1][0])

    def learned(batch: dict, **kwargs: Any) -> dict:
        pairs[-1][1].update(batch)
        return update(batch, **kwargs)

    algo.replay.sample, algo.learner.update = sampled, learned  # type: ignore[method-assign]
    _observe_40(algo, seed=3)
    algo.learn(40)
    assert pairs and algo.updates == len(pairs) == int(40 * cfg.algorithm.replay_ratio)
    for before, after in pairs:
        for key in ("obs", "next_obs"):
            assert after[key].shape == before[key].shape
            assert torch.equal(after[key][:, :, :4], before[key][:, :, :4])
            assert not torch.equal(after[key], before[key])
        assert torch.equal(after["action"], before["action"])
    # a resume moves the next stacks as the run would have (the shifts' generator is saved)
    again = algos.get("dqn").make(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    assert isinstance(again, DQN)
    again.load_state_dict(algo.state_dict())
    stacks = _frames(8, seed=9)
    assert torch.equal(
        again._shifted({"obs": stacks, "next_obs": stacks}, 4)["obs"],
        algo._shifted({"obs": stacks, "next_obs": stacks}, 4)["obs"],
    )


def test_a_decaying_learning_rate_falls_linearly_to_its_end_and_resumes_there() -> None:
    """``lr_end_frac``: the updates due at step s run at lr * (1 - (1 - frac) * s / total_steps),
    the last ones at lr * frac, and the rate is logged; a run that resumes at step s goes on at
    that rate. The default keeps the rate."""
    values = {"num_envs": 1, "burn_in": 0, "replay_size": 200, "batch_size": 8, "n_step": 1}
    cfg = build_config({**values, "lr": 1e-3, "lr_end_frac": 0.1, "total_steps": 1000})
    algo = algos.get("dqn").make(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    assert isinstance(algo, DQN)
    rates: list[float] = []
    update = algo.learner.update

    def learned(batch: dict, **kwargs: Any) -> dict:
        rates.append(algo.learner.optimizer.param_groups[0]["lr"])
        return update(batch, **kwargs)

    algo.learner.update = learned  # type: ignore[method-assign]
    _observe_40(algo, seed=3)
    for step, expected in ((40, 1e-3 * (1 - 0.9 * 0.04)), (500, 5.5e-4), (1000, 1e-4)):
        algo.learn(step)
        assert rates[-1] == pytest.approx(expected)
        assert algo.status(step)["lr"] == pytest.approx(expected)
    assert len(set(rates)) == 3 and algo.updates == len(rates)
    again = algos.get("dqn").make(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    assert isinstance(again, DQN)
    again.load_state_dict(algo.state_dict())
    again.learn(1000)
    assert again.learner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    constant = build_config({**values, "lr": 1e-3, "total_steps": 1000})
    plain = algos.get("dqn").make(constant.algorithm, constant.context(5, torch.device("cpu")))
    assert isinstance(plain, DQN) and "lr" not in plain.status(500)


def test_n_step_and_gamma_anneal_from_the_burn_in_and_resume_there() -> None:
    """``n_step_end``/``gamma_end``: the replay sums n_step rewards discounted by gamma until
    the burn-in ends, then moves linearly to the end values over ``anneal_steps`` (BBF), the
    values are logged, and a resumed run samples at its step's horizon. The replay keeps the
    longer lookahead, so its sampleable slots don't change with the horizon."""
    values = {"num_envs": 1, "burn_in": 10, "replay_size": 200, "batch_size": 8}
    values |= {"n_step": 9, "gamma": 0.9, "total_steps": 1000}
    cfg = build_config(values | {"n_step_end": 3, "gamma_end": 0.99, "anneal_steps": 100})
    algo = algos.get("dqn").make(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    assert isinstance(algo, DQN)
    assert (algo.replay.n_step, algo.replay.horizon, algo.replay.gamma) == (9, 9, 0.9)
    _observe_40(algo, seed=3)
    for step, (n, gamma) in ((40, (7, 0.927)), (60, (6, 0.945)), (500, (3, 0.99))):
        algo.learn(step)
        assert (algo.replay.horizon, algo.replay.gamma) == (n, pytest.approx(gamma))
        assert algo.status(step)["n_step"] == n
        assert algo.status(step)["gamma"] == pytest.approx(gamma)
        if step == 60:
            saved = algo.state_dict()
    again = algos.get("dqn").make(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    assert isinstance(again, DQN)
    again.load_state_dict(saved)
    _observe_40(again, seed=4)
    again.learn(70)
    assert (again.replay.horizon, again.replay.gamma) == (5, pytest.approx(0.954))
    rest = build_config(values | {"n_step_end": 1})  # anneal_steps 0: the rest of the run
    assert rest.algorithm.lookahead == 9
    shrink = algos.get("dqn").make(rest.algorithm, rest.context(5, torch.device("cpu")))
    assert isinstance(shrink, DQN) and shrink.horizon(505) == (5, 0.9)
    longer = build_config(values | {"n_step": 2, "n_step_end": 5})
    grow = algos.get("dqn").make(longer.algorithm, longer.context(5, torch.device("cpu")))
    assert isinstance(grow, DQN) and (grow.replay.n_step, grow.replay.horizon) == (5, 2)
    constant = build_config(values)
    plain = algos.get("dqn").make(constant.algorithm, constant.context(5, torch.device("cpu")))
    assert isinstance(plain, DQN) and "n_step" not in plain.status(500)


def test_an_averaged_policy_plays_evaluations_and_checkpoints_and_resumes(
    tmp_path: Path,
) -> None:
    """``policy_ema``: after each update the averaged online head moves that far toward the
    online one; evaluations (``policy()``) and a checkpoint's agent (``acting``) play it while
    training explores with the online head; a resume restores it, and a checkpoint without one
    starts it at the online head. The default keeps no average."""
    from mario.storage.checkpoints import acting_state

    values = {"num_envs": 1, "burn_in": 0, "replay_size": 200, "batch_size": 8, "n_step": 1}
    cfg = build_config({**values, "policy_ema": 0.25, "replay_ratio": 0.25})
    ctx = cfg.context(5, torch.device("cpu"))
    algo = algos.get("dqn").make(cfg.algorithm, ctx)
    assert isinstance(algo, DQN) and algo.average is not None
    expected = copy.deepcopy(algo.net.online)
    update = algo.learner.update

    def learned(batch: dict, **kwargs: Any) -> dict:
        out = update(batch, **kwargs)
        with torch.no_grad():
            pairs = zip(expected.parameters(), algo.net.online.parameters(), strict=True)
            for mine, online in pairs:
                mine += 0.25 * (online - mine)
        return out

    algo.learner.update = learned  # type: ignore[method-assign]
    _observe_40(algo, seed=4)
    algo.learn(40)
    assert algo.updates == 10
    averaged = algo.average.online.state_dict()
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(averaged[name], value)
    obs = _frames(3, seed=5).numpy()
    with torch.no_grad():
        q_average = algo.average(torch.from_numpy(obs))
        assert not torch.allclose(q_average, algo.net(torch.from_numpy(obs)))
    played = algo.policy()
    assert played.net is algo.average and algo._policy.net is algo.net
    _, rows = played.act(obs)
    assert rows is not None
    torch.testing.assert_close(torch.tensor([r.values for r in rows]), q_average)

    state = algo.state_dict()
    assert set(state["acting"]) == {f"online.{k}" for k in averaged}
    agent = algos.get("dqn").load_policy(cfg.algorithm, acting_state(state), ctx)
    _, rows = agent.act(obs)
    assert rows is not None
    torch.testing.assert_close(torch.tensor([r.values for r in rows]), q_average)
    checkpoint = {
        "config": {**values, "policy_ema": 0.25, "replay_ratio": 0.25},
        "algo": "dqn",
        "net_signature": net_signature(algo.net),
        "counters": {"step": 40},
        "algorithm": state,
    }
    shipped = torch.load(pretrained.export(checkpoint, {}, tmp_path / "t.pt"), weights_only=True)
    for name, value in averaged.items():  # a shipped agent plays the average too
        torch.testing.assert_close(shipped["weights"][f"online.{name}"], value.half())
    again = algos.get("dqn").make(cfg.algorithm, ctx)
    assert isinstance(again, DQN) and again.average is not None
    again.load_state_dict(state)
    for name, value in again.average.online.state_dict().items():
        torch.testing.assert_close(value, averaged[name])
    older = {k: v for k, v in state.items() if k != "acting"}
    again.load_state_dict(older)
    for name, value in again.average.online.state_dict().items():
        torch.testing.assert_close(value, algo.net.online.state_dict()[name])

    plain = algos.get("dqn").make(build_config(values).algorithm, ctx)
    assert isinstance(plain, DQN) and plain.average is None and plain.policy().net is plain.net
    assert "acting" not in plain.state_dict()
    plain_state = plain.state_dict()
    assert acting_state(plain_state) is plain_state["net"]


def test_a_policy_average_plays_the_mean_of_the_runs_tail_and_resumes() -> None:
    """``policy_average`` K: the first learn at or after each multiple of
    ``policy_average_every`` keeps the online head's weights (the newest K - 1); evaluations
    and a checkpoint's agent play the mean of those and the online head now; a resume
    restores them, and a checkpoint from before the option keeps none of the multiples
    already passed."""
    from mario.storage.checkpoints import acting_state

    values = {"num_envs": 1, "burn_in": 0, "replay_size": 200, "batch_size": 8, "n_step": 1}
    values |= {"replay_ratio": 0.25, "policy_average": 3, "policy_average_every": 10}
    cfg = build_config(values)
    ctx = cfg.context(5, torch.device("cpu"))
    algo = algos.get("dqn").make(cfg.algorithm, ctx)
    assert isinstance(algo, DQN) and algo.average is not None
    _observe_40(algo, seed=4)
    seen = {}
    for step in (5, 10, 15, 20, 25, 30, 35):
        algo.learn(step)
        seen[step] = copy.deepcopy(algo.net.online.state_dict())
    assert algo.snapshot_count == 3 and len(algo.snapshots) == 2
    for kept, step in zip(algo.snapshots, (15, 25), strict=True):  # taken before learn(20, 30)
        for name, value in kept.items():
            torch.testing.assert_close(value, seen[step][name])
    mean = {k: (seen[35][k] + seen[15][k] + seen[25][k]) / 3 for k in seen[35]}
    assert any(not torch.allclose(mean[k], seen[35][k]) for k in mean)
    played = algo.policy()
    assert played.net is algo.average and algo._policy.net is algo.net
    for name, value in algo.average.online.state_dict().items():
        torch.testing.assert_close(value, mean[name])

    state = algo.state_dict()
    assert state["snapshots"]["count"] == 3
    obs = _frames(3, seed=5).numpy()
    agent = algos.get("dqn").load_policy(cfg.algorithm, acting_state(state), ctx)
    _, rows = agent.act(obs)
    _, expected = played.act(obs)
    assert rows is not None and expected is not None
    torch.testing.assert_close(
        torch.tensor([r.values for r in rows]), torch.tensor([r.values for r in expected])
    )
    again = algos.get("dqn").make(cfg.algorithm, ctx)
    assert isinstance(again, DQN)
    again.load_state_dict(state)
    assert again.snapshot_count == 3
    again.policy()
    for name, value in again.average.online.state_dict().items():  # type: ignore[union-attr]
        torch.testing.assert_close(value, mean[name])

    older = {k: v for k, v in state.items() if k not in ("snapshots", "acting")}
    again.load_state_dict(older)
    assert again.snapshot_count is None and again.snapshots == []
    _observe_40(again, seed=6)
    again.learn(45)  # the 4 multiples passed by step 45 count as kept
    assert again.snapshot_count == 4 and again.snapshots == []
    again.learn(50)
    assert again.snapshot_count == 5 and len(again.snapshots) == 1


def test_averaging_checkpoints_gives_the_agent_a_policy_average_plays(tmp_path: Path) -> None:
    """scripts/average_checkpoints.py: checkpoints of a run trained without
    ``policy_average``, taken ``policy_average_every`` apart, average into the agent the
    option plays at the newest of them, since the option leaves what a run learns unchanged
    (the same seed learns the same weights with and without it); bad input is one line and
    exit status 2, nothing written."""
    import subprocess
    import sys

    from mario.storage.checkpoints import acting_state, load_checkpoint, save_checkpoint

    values = {"num_envs": 1, "burn_in": 0, "replay_size": 200, "batch_size": 8, "n_step": 1}
    values |= {"replay_ratio": 0.25, "policy_average_every": 10}
    cfg = build_config(values)
    ctx = cfg.context(5, torch.device("cpu"))

    paths: list[Path] = []

    def run(settings: dict[str, Any], *, save: bool) -> DQN:
        """Steps 0-49, saving at 40 and 50 with ``save`` (a run saves at a step before it
        learns at it)."""
        torch.manual_seed(7)  # the replay draws from torch's global stream
        algo = algos.get("dqn").make(build_config(settings).algorithm, ctx)
        assert isinstance(algo, DQN)
        _observe_40(algo, seed=4)
        for step in (35, 40, 45, 50):
            if save and step in (40, 50):
                state = {"format": 2, "algo": "dqn", "config": values, "counters": {"step": step}}
                state["algorithm"] = algo.state_dict()
                paths.append(save_checkpoint(tmp_path / "run", step, state).path)
            if step < 50:
                algo.learn(step)
        return algo

    expected = run(values | {"policy_average": 2}, save=False).state_dict()["acting"]
    run(values, save=True)
    script = Path(__file__).parents[1] / "scripts" / "average_checkpoints.py"
    out = tmp_path / "averaged"
    done = subprocess.run(
        [sys.executable, str(script), str(out), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    state, info, _ = load_checkpoint(out)
    assert info.step == 50
    assert set(acting_state(state["algorithm"])) == set(expected)
    for name, value in acting_state(state["algorithm"]).items():
        torch.testing.assert_close(value, expected[name])

    bad = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one"), str(paths[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "give 2 to 64 checkpoints, got 1" in bad.stderr
    assert not (tmp_path / "one").exists()


def _trained(values: dict[str, Any], seed: int) -> DQN:
    cfg = build_config(values)
    algo = algos.get("dqn").make(cfg.algorithm, cfg.context(5, torch.device("cpu")))
    assert isinstance(algo, DQN)
    _observe_40(algo, seed=seed)
    algo.learn(40)
    return algo


def test_shrink_and_perturb_keeps_part_of_the_torso_and_starts_the_heads_afresh() -> None:
    """A reset moves the online torso to ``reset_shrink`` of itself plus the rest of a fresh
    initialisation that depends only on the run's seed and the reset's index; the dueling
    heads become that fresh initialisation; Adam's moments are cleared; the target head is
    left alone. Two differently trained networks reset with ``reset_shrink`` 0 therefore end
    identical, and with 0.5 each ends halfway between its own torso and that fresh one."""
    values = {"num_envs": 1, "burn_in": 0, "replay_size": 200, "batch_size": 8, "n_step": 1}
    values |= {"replay_ratio": 0.25, "dueling": True, "seed": 3}
    nets = [_trained(values | {"reset_shrink": s}, seed=k) for k, s in enumerate((0.0, 0.5))]
    wiped, halved = nets
    old_torso = {k: v.clone() for k, v in halved.net.online.features.state_dict().items()}
    old_heads = copy.deepcopy(halved.net.online.value.state_dict())
    old_target = {k: v.clone() for k, v in halved.net.target.state_dict().items()}
    assert halved.learner.optimizer.state
    for algo in nets:
        algo.shrink_and_perturb(2)
    assert not halved.learner.optimizer.state
    for name, value in halved.net.target.state_dict().items():
        torch.testing.assert_close(value, old_target[name])
    for (name, value), fresh in zip(
        halved.net.online.state_dict().items(), wiped.net.online.state_dict().values(), strict=True
    ):
        if name.startswith("features."):
            expected = 0.5 * old_torso[name.removeprefix("features.")] + 0.5 * fresh
            torch.testing.assert_close(value, expected)
        else:
            torch.testing.assert_close(value, fresh)
    weight = halved.net.online.value[0].weight
    assert not torch.allclose(weight, old_heads["0.weight"])
    other = _trained(values | {"reset_shrink": 0.0}, seed=7)
    other.shrink_and_perturb(3)  # another index: another fresh initialisation
    assert not torch.allclose(other.net.online.value[0].weight, weight)
    assert math.isfinite(halved.learner.update(halved.replay.sample(8))["loss"])


def test_resets_follow_the_schedule_and_resume_without_an_extra_one() -> None:
    """With ``reset_every`` 10 and ``reset_until`` 0.3 of 100 steps, resets fall at steps 10,
    20 and 30 and none after; the count is in the status and the checkpoint, a resumed run
    does not reset again, and a checkpoint from before the option counts the due resets as
    done. Off by default."""
    values = {"num_envs": 1, "burn_in": 0, "replay_size": 200, "batch_size": 8, "n_step": 1}
    values |= {"replay_ratio": 0.25, "total_steps": 100, "reset_every": 10, "reset_until": 0.3}
    cfg = build_config(values)
    ctx = cfg.context(5, torch.device("cpu"))

    def recording(algo: DQN) -> list[int]:
        calls: list[int] = []
        reset = algo.shrink_and_perturb
        algo.shrink_and_perturb = lambda i: (calls.append(i), reset(i))[-1]  # type: ignore[method-assign]
        return calls

    algo = algos.get("dqn").make(cfg.algorithm, ctx)
    assert isinstance(algo, DQN)
    calls = recording(algo)
    _observe_40(algo, seed=1)
    for step in (5, 9, 10, 15, 25, 40):
        algo.learn(step)
    assert calls == [1, 2, 3] and algo.resets == 3 and algo.status(40)["resets"] == 3
    algo.learn(40)
    assert calls == [1, 2, 3]
    state = algo.state_dict()
    assert state["resets"] == 3
    again = algos.get("dqn").make(cfg.algorithm, ctx)
    assert isinstance(again, DQN)
    again_calls = recording(again)
    _observe_40(again, seed=1)
    again.load_state_dict(state)
    again.learn(40)
    older = algos.get("dqn").make(cfg.algorithm, ctx)
    assert isinstance(older, DQN)
    older_calls = recording(older)
    _observe_40(older, seed=1)
    older.load_state_dict({k: v for k, v in state.items() if k != "resets"})
    older.learn(40)
    assert again_calls == older_calls == [] and again.resets == older.resets == 3
    plain = algos.get("dqn").make(build_config(values | {"reset_every": 0}).algorithm, ctx)
    assert isinstance(plain, DQN) and "resets" not in plain.status(40)
