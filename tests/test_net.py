from __future__ import annotations

import pytest
import torch

from mario.models import ActorCritic, MarioNet, net_signature


def _frames(n: int, c: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, 84, 84), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize("n", [1, 32])
def test_output_shapes(n: int, dueling: bool) -> None:
    net = MarioNet(7, dueling=dueling)
    for model in ("online", "target"):
        q = net(_frames(n), model=model)
        assert q.shape == (n, 7)
        assert q.dtype == torch.float32
        assert torch.isfinite(q).all()


def test_feature_size_is_3136() -> None:
    net = MarioNet(5)
    assert net.online.features(torch.zeros(2, 4, 84, 84)).shape == (2, 3136)


def test_uint8_input_matches_float_over_255() -> None:
    torch.manual_seed(0)
    net = MarioNet(5)
    x = _frames(4)
    q_uint8 = net(x)
    q_float = net(x.float() / 255)
    q_manual = net.online(x.float() / 255)
    torch.testing.assert_close(q_uint8, q_float, rtol=0, atol=0)
    torch.testing.assert_close(q_uint8, q_manual, rtol=0, atol=0)
    assert x.dtype == torch.uint8  # input untouched


def test_single_channel_accepts_n_84_84() -> None:
    torch.manual_seed(0)
    net = MarioNet(3, in_channels=1)
    x = _frames(2, c=1)
    torch.testing.assert_close(net(x[:, 0]), net(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "shape", [(2, 84, 84), (4, 84, 84), (2, 3, 84, 84), (2, 4, 64, 64), (2, 4, 84, 84, 1)]
)
def test_bad_shapes_raise(shape: tuple[int, ...]) -> None:
    net = MarioNet(3, in_channels=4)
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(shape, dtype=torch.uint8))


def test_bad_arguments_raise() -> None:
    net = MarioNet(3)
    with pytest.raises(ValueError, match="model must be one of"):
        net(_frames(1), model="behaviour")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        net(torch.zeros(1, 4, 84, 84, dtype=torch.int32))
    with pytest.raises(ValueError, match="n_actions"):
        MarioNet(0)
    with pytest.raises(ValueError, match="in_channels"):
        MarioNet(3, in_channels=0)
    with pytest.raises(ValueError, match="tau"):
        net.soft_update(0.0)
    with pytest.raises(ValueError, match="tau"):
        net.soft_update(1.5)


def test_dueling_combines_value_and_mean_centred_advantage() -> None:
    torch.manual_seed(0)
    net = MarioNet(6, dueling=True)
    x = _frames(8)
    q = net(x)
    h = net.online.features(x.float() / 255)
    value, adv = net.online.value(h), net.online.advantage(h)
    assert value.shape == (8, 1) and adv.shape == (8, 6)
    torch.testing.assert_close(q, value + adv - adv.mean(dim=1, keepdim=True))
    torch.testing.assert_close(q.mean(dim=1), value.squeeze(1))  # mean of Q is V
    assert not hasattr(MarioNet(6).online, "value")


def test_init_deterministic_zero_bias_and_target_equals_online() -> None:
    torch.manual_seed(123)
    a = MarioNet(7, dueling=True)
    torch.manual_seed(123)
    b = MarioNet(7, dueling=True)
    torch.manual_seed(124)
    c = MarioNet(7, dueling=True)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert any(k.startswith("target.") for k in sa) and any(k.startswith("online.") for k in sa)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)
        if k.endswith("bias"):
            assert torch.count_nonzero(sa[k]) == 0
        elif k.startswith("online."):
            assert not torch.equal(sa[k], sc[k]), k
    for (name, p), (_, t) in zip(
        a.online.named_parameters(), a.target.named_parameters(), strict=True
    ):
        assert torch.equal(p, t), name
    # Kaiming (fan-in, ReLU) on the first conv: std = sqrt(2 / (4 * 8 * 8)).
    w = a.online.features[0].weight
    assert w.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.1)


def test_target_is_frozen_and_unchanged_by_optimizer_step() -> None:
    torch.manual_seed(0)
    net = MarioNet(4)
    assert all(not p.requires_grad for p in net.target.parameters())
    assert all(p.requires_grad for p in net.online.parameters())
    before = [p.clone() for p in net.target.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)  # even given all params
    loss = net(_frames(4)).sum() + net(_frames(4), model="target").sum()
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in net.target.parameters())
    assert any(p.grad is not None for p in net.online.parameters())
    for p, b in zip(net.target.parameters(), before, strict=True):
        assert torch.equal(p, b)
    assert not torch.equal(net(_frames(2)), net(_frames(2), model="target"))


def test_sync_target_copies_online() -> None:
    torch.manual_seed(0)
    net = MarioNet(4)
    with torch.no_grad():
        for p in net.online.parameters():
            p.add_(torch.randn_like(p))
    x = _frames(3)
    assert not torch.equal(net(x), net(x, model="target"))
    net.sync_target()
    torch.testing.assert_close(net(x), net(x, model="target"), rtol=0, atol=0)
    assert all(not p.requires_grad for p in net.target.parameters())
    # A copy, not an alias: changing online afterwards leaves target alone.
    with torch.no_grad():
        net.online.head[2].bias.add_(1.0)
    assert not torch.equal(net.online.head[2].bias, net.target.head[2].bias)


def test_soft_update_formula() -> None:
    torch.manual_seed(0)
    net = MarioNet(4, dueling=True)
    with torch.no_grad():
        for p in net.online.parameters():
            p.copy_(torch.randn_like(p))
        for p in net.target.parameters():
            p.copy_(torch.randn_like(p))
    online = [p.clone() for p in net.online.parameters()]
    target = [p.clone() for p in net.target.parameters()]
    net.soft_update(0.25)
    for o, t, new in zip(online, target, net.target.parameters(), strict=True):
        torch.testing.assert_close(new, 0.25 * o + 0.75 * t)
        assert not new.requires_grad
    for o, p in zip(online, net.online.parameters(), strict=True):
        assert torch.equal(o, p)  # online untouched
    net.soft_update(1.0)
    for o, p in zip(online, net.target.parameters(), strict=True):
        torch.testing.assert_close(p, o)


def test_net_signature() -> None:
    assert net_signature(MarioNet(7)) == {"n_actions": 7, "in_channels": 4, "dueling": False}
    assert net_signature(MarioNet(12, 1, dueling=True)) == {
        "n_actions": 12,
        "in_channels": 1,
        "dueling": True,
    }
    assert net_signature(MarioNet(5, width=0.5))["width"] == "0.5"
    assert net_signature(ActorCritic(5)) == {
        "kind": "actor_critic",
        "n_actions": 5,
        "in_channels": 4,
    }
    assert net_signature(ActorCritic(5, width=0.25))["width"] == "0.25"
    # another algorithm's network (mario.algos.register): its class and size
    assert net_signature(torch.nn.Linear(2, 3)) == {"kind": "Linear", "parameters": 9}
