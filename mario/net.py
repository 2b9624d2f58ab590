"""The Q-network: the Nature-DQN CNN, with an online head that learns and a frozen target head.

Shapes (N = batch, C = stacked frames, A = actions)::

    obs      uint8 (N, C, 84, 84)   ((N, 84, 84) also accepted when C == 1)
    conv 32@8x8/4 -> ReLU           (N, 32, 20, 20)
    conv 64@4x4/2 -> ReLU           (N, 64, 9, 9)
    conv 64@3x3/1 -> ReLU           (N, 64, 7, 7)
    flatten                         (N, 3136)
    Linear 512 -> ReLU -> Linear A  (N, A)       Q-values, float32

With ``dueling=True`` the last two layers are two streams, value ``V`` (512 -> 1) and
advantage ``A`` (512 -> A), combined as ``Q = V + A - mean_a(A)`` (Wang et al. 2016).

``MarioNet`` holds two full copies of that network as submodules named ``online`` and
``target``; both live in ``state_dict()``, so a checkpoint restores the target as it was.

Weight initialisation (deterministic under ``torch.manual_seed``): every conv and hidden
``Linear`` gets Kaiming-normal weights (fan-in, ReLU gain sqrt(2)), which keeps activation
scale constant through the ReLU stack; the output layers (Q, value, advantage) get
Xavier-uniform weights (gain 1), so initial Q-values are O(1) rather than O(sqrt(2)^depth).
All biases start at zero. The target starts as an exact copy of the online head.
"""

from __future__ import annotations

import copy
import re
from typing import Literal

import torch
from torch import nn

FRAME_SIZE = 84
"""Side of the square frames the network takes (the Linear layer is sized for it)."""
_FLAT = 64 * 7 * 7  # conv output for an 84x84 input
_HIDDEN = 512
HEAD_NAMES: tuple[str, str] = ("online", "target")


def _init_hidden(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(module.bias)


def _init_output(layer: nn.Linear) -> None:
    nn.init.xavier_uniform_(layer.weight, gain=1.0)
    nn.init.zeros_(layer.bias)


class QNetwork(nn.Module):
    """One copy of the CNN: float input in [0, 1] of shape (N, C, 84, 84) -> Q (N, A).

    Submodules: ``features`` (convs + flatten), then ``head`` (plain) or ``value`` and
    ``advantage`` (dueling).
    """

    def __init__(self, n_actions: int, in_channels: int, dueling: bool) -> None:
        super().__init__()
        self.dueling = dueling
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.features.apply(_init_hidden)
        if dueling:
            self.value = self._stream(1)
            self.advantage = self._stream(n_actions)
        else:
            self.head = self._stream(n_actions)

    @staticmethod
    def _stream(n_out: int) -> nn.Sequential:
        hidden, out = nn.Linear(_FLAT, _HIDDEN), nn.Linear(_HIDDEN, n_out)
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

    def __init__(self, n_actions: int, in_channels: int = 4, *, dueling: bool = False) -> None:
        super().__init__()
        if isinstance(n_actions, bool) or not isinstance(n_actions, int) or n_actions < 1:
            raise ValueError(f"n_actions must be an int >= 1, got {n_actions!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be an int >= 1, got {in_channels!r}")
        self.n_actions = n_actions
        self.in_channels = in_channels
        self.dueling = bool(dueling)
        self.online = QNetwork(n_actions, in_channels, self.dueling)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.online.features[0].weight.device

    def forward(
        self, x: torch.Tensor, model: Literal["online", "target"] = "online"
    ) -> torch.Tensor:
        if model == "online":
            head = self.online
        elif model == "target":
            head = self.target
        else:
            raise ValueError(f"model must be one of {HEAD_NAMES}, got {model!r}")
        return head(self._prepare(x))

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and self.in_channels == 1:
            x = x.unsqueeze(1)
        expected = (self.in_channels, FRAME_SIZE, FRAME_SIZE)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"observation batch must have shape (N, {', '.join(map(str, expected))})"
                f"{' or (N, 84, 84)' if self.in_channels == 1 else ''}, got {tuple(x.shape)}"
            )
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            return x.float().div_(255.0)  # the fresh float tensor is ours to scale in place
        if x.is_floating_point():
            return x.float()
        raise ValueError(f"observations must be uint8 (or float in [0, 1]), got {x.dtype}")

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


def net_signature(net: nn.Module) -> dict[str, int | bool]:
    """What must match for a checkpoint's weights to load into ``net``."""
    net = getattr(net, "_orig_mod", net)  # a torch.compile wrapper holds the real net
    if not isinstance(net, MarioNet):
        raise ValueError(f"expected a MarioNet, got {type(net).__name__}")
    return {"n_actions": net.n_actions, "in_channels": net.in_channels, "dueling": net.dueling}


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises ValueError naming the device when it is not one of those or does not exist here.
    """
    if not (name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name)):
        raise ValueError(f"unknown device {name!r}: valid devices are auto, cpu, cuda, cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device {name!r} asked for, but no CUDA device is available: use cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {name!r} asked for, but there are {count} CUDA devices "
                f"(valid: cuda:0..cuda:{count - 1}, cpu)"
            )
    return device
