"""The networks: one CNN torso, with a Q head (DQN) or an actor-critic head (PPO).

Shapes (N = batch, C = stacked frames, A = actions)::

    obs      uint8 (N, C, 84, 84)   ((N, 84, 84) also accepted when C == 1)
    torso    the Nature-DQN CNN, scaled to [0, 1] on the device:
      conv 32@8x8/4 -> ReLU         (N, 32, 20, 20)
      conv 64@4x4/2 -> ReLU         (N, 64, 9, 9)
      conv 64@3x3/1 -> ReLU         (N, 64, 7, 7)
      flatten                       (N, 3136)
    Q head   Linear 512 -> ReLU -> Linear A               (N, A) Q-values, float32
             dueling: value V (512 -> 1) and advantage (512 -> A), Q = V + A - mean_a(A)
    AC head  Linear 512 -> ReLU -> policy logits (A) and state value (1)

``MarioNet`` (DQN) holds two full Q networks as submodules ``online`` and ``target``; both
live in ``state_dict()``, so a checkpoint restores the target as it was. ``ActorCritic``
(PPO) is one torso and one shared hidden layer with two outputs.

Weight initialisation (deterministic under ``torch.manual_seed``). Q networks: every conv
and hidden ``Linear`` gets Kaiming-normal weights (fan-in, ReLU gain sqrt(2)), the output
layers Xavier-uniform (gain 1), so initial Q-values are O(1); biases zero; the target starts
as an exact copy of the online head. Actor-critic: orthogonal weights (gain sqrt(2) hidden,
0.01 policy, 1 value) and zero biases, as PPO implementations do (CleanRL, SB3): a nearly
uniform initial policy and unit-scale value estimates.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from mario.settings import MAX_NET_WIDTH

FRAME_SIZE = 84
"""Side of the square frames the network takes (the Linear layer is sized for it)."""
HEAD_NAMES: tuple[str, str] = ("online", "target")


def _init_hidden(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _init_output(layer: nn.Linear) -> None:
    nn.init.xavier_uniform_(layer.weight, gain=1.0)
    nn.init.zeros_(layer.bias)


def widths(width: float) -> tuple[int, int, int]:
    """Conv channels (first, later) and hidden units of a torso ``width`` times the Nature
    CNN's (32, 64, 512): 0.5 is a quarter of the compute, for CPU runs."""
    return round(32 * width), round(64 * width), round(512 * width)


def nature_torso(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """The Nature-DQN conv stack: (N, C, 84, 84) in [0, 1] -> (N, 64 * width * 7 * 7)."""
    first, later, _ = widths(width)
    return nn.Sequential(
        nn.Conv2d(in_channels, first, kernel_size=8, stride=4),
        nn.ReLU(inplace=True),
        nn.Conv2d(first, later, kernel_size=4, stride=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(later, later, kernel_size=3, stride=1),
        nn.ReLU(inplace=True),
        nn.Flatten(),
    )


def check_args(n_actions: int, in_channels: int, width: float = 1.0) -> None:
    if isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions < 1:
        raise ValueError(f"n_actions must be an int >= 1, got {n_actions!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an int >= 1, got {in_channels!r}")
    if not 0 < width <= MAX_NET_WIDTH:
        raise ValueError(f"width must be in (0, {MAX_NET_WIDTH:g}], got {width!r}")


def prepare_frames(x: torch.Tensor, in_channels: int, device: torch.device) -> torch.Tensor:
    """Observations as the torso takes them: float in [0, 1] on ``device``. uint8 frames
    travel as uint8 and are converted and scaled there (a float ``x`` is taken as scaled)."""
    if x.dim() == 3 and in_channels == 1:
        x = x.unsqueeze(1)
    expected = (in_channels, FRAME_SIZE, FRAME_SIZE)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"observation batch must have shape (N, {', '.join(map(str, expected))})"
            f"{' or (N, 84, 84)' if in_channels == 1 else ''}, got {tuple(x.shape)}"
        )
    x = x.to(device, non_blocking=True)
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)  # the fresh float tensor is ours to scale in place
    if x.is_floating_point():
        return x.float()
    raise ValueError(f"observations must be uint8 (or float in [0, 1]), got {x.dtype}")


class QNetwork(nn.Module):
    """One copy of the Q network: float input in [0, 1] of shape (N, C, 84, 84) -> Q (N, A).

    Submodules: ``features`` (the torso), then ``head`` (plain) or ``value`` and
    ``advantage`` (dueling).
    """

    def __init__(self, n_actions: int, in_channels: int, dueling: bool, width: float = 1.0) -> None:
        super().__init__()
        self.dueling = dueling
        self.features = nature_torso(in_channels, width)
        self.features.apply(_init_hidden)
        _, later, hidden = widths(width)
        flat = later * 7 * 7
        if dueling:
            self.value = self._stream(flat, hidden, 1)
            self.advantage = self._stream(flat, hidden, n_actions)
        else:
            self.head = self._stream(flat, hidden, n_actions)

    @staticmethod
    def _stream(flat: int, width: int, n_out: int) -> nn.Sequential:
        hidden, out = nn.Linear(flat, width), nn.Linear(width, n_out)
        _init_hidden(hidden)
        _init_output(out)
        return nn.Sequential(hidden, nn.ReLU(inplace=True), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if not self.dueling:
            return self.head(h)
        adv = self.advantage(h)
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True)


class MarioNet(nn.Module):
    """Online and target Q-networks (module docstring has the shapes and the init).

    ``forward(x, model="online")`` takes uint8 frames (on any device), moves them to the
    net's device and only there converts them to float and scales by 1/255. A floating-point
    ``x`` is taken as already scaled to [0, 1]. The target head never needs gradients: its
    parameters have ``requires_grad=False`` and change only through :meth:`sync_target` and
    :meth:`soft_update`.
    """

    def __init__(
        self, n_actions: int, in_channels: int = 4, *, dueling: bool = False, width: float = 1.0
    ) -> None:
        super().__init__()
        check_args(n_actions, in_channels, width)
        self.n_actions = n_actions
        self.in_channels = in_channels
        self.dueling = bool(dueling)
        self.width = float(width)
        self.online = QNetwork(n_actions, in_channels, self.dueling, self.width)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.online.parameters()).device

    def forward(
        self, x: torch.Tensor, model: Literal["online", "target"] = "online"
    ) -> torch.Tensor:
        if model == "online":
            head = self.online
        elif model == "target":
            head = self.target
        else:
            raise ValueError(f"model must be one of {HEAD_NAMES}, got {model!r}")
        return head(prepare_frames(x, self.in_channels, self.device))

    @torch.no_grad()
    def sync_target(self) -> None:
        """Hard update: target <- online."""
        torch._foreach_copy_(list(self.target.parameters()), list(self.online.parameters()))

    @torch.no_grad()
    def soft_update(self, tau: float) -> None:
        """Polyak update: target <- tau * online + (1 - tau) * target, in place."""
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau!r}")
        torch._foreach_lerp_(list(self.target.parameters()), list(self.online.parameters()), tau)


class ActorCritic(nn.Module):
    """PPO's network: ``forward(x) -> (logits (N, A), value (N,))``, both float32.

    Submodules: ``features`` (the torso), ``hidden`` (Linear 3136 -> 512 + ReLU at width 1),
    ``policy`` (512 -> A) and ``value`` (512 -> 1). uint8 frames are scaled on the device.
    ``width`` scales the torso's channels and hidden units as :class:`MarioNet`'s does.
    """

    def __init__(self, n_actions: int, in_channels: int = 4, width: float = 1.0) -> None:
        super().__init__()
        check_args(n_actions, in_channels, width)
        self.n_actions = n_actions
        self.in_channels = in_channels
        self.width = float(width)
        _, later, hidden = widths(width)
        self.features = nature_torso(in_channels, width)
        self.hidden = nn.Sequential(nn.Linear(later * 7 * 7, hidden), nn.ReLU(inplace=True))
        self.policy = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1)
        for module in (*self.features, self.hidden[0]):
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(module.weight, gain=2**0.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for layer, gain in ((self.policy, 0.01), (self.value, 1.0)):
            nn.init.orthogonal_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)

    @property
    def device(self) -> torch.device:
        return self.policy.weight.device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(self.features(prepare_frames(x, self.in_channels, self.device)))
        return self.policy(h).float(), self.value(h).squeeze(1).float()


def net_signature(net: nn.Module) -> dict[str, int | bool | str]:
    """What must match for a checkpoint's weights to load into ``net``."""
    net = getattr(net, "_orig_mod", net)  # a torch.compile wrapper holds the real net
    if isinstance(net, (MarioNet, ActorCritic)):
        signature: dict[str, int | bool | str] = (
            {"n_actions": net.n_actions, "in_channels": net.in_channels, "dueling": net.dueling}
            if isinstance(net, MarioNet)
            else {
                "kind": "actor_critic",
                "n_actions": net.n_actions,
                "in_channels": net.in_channels,
            }
        )
        if net.width != 1.0:  # (checkpoints of full-width nets predate the key)
            signature["width"] = str(net.width)
        return signature
    # another algorithm's network (mario.algos.register): its class, sizes and parameters
    signature = {"kind": type(net).__name__}
    for name in ("n_actions", "in_channels"):
        value = getattr(net, name, None)
        if isinstance(value, int):
            signature[name] = value
    signature["parameters"] = sum(p.numel() for p in net.parameters())
    return signature
