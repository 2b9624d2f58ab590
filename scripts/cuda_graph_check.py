"""Check on a GPU that the CUDA-graphed learner update learns exactly as the eager one.

    python scripts/cuda_graph_check.py [--updates 40] [--json OUT.json]

Two learners from the same initial weights take the same random batches, one eagerly and
one through a captured CUDA graph (fp32 and bf16 autocast), with hard target syncs inside
the run; then the graphed one's state is saved, loaded into a fresh graphed learner (as a
resume does) and both continue. Reports the largest differences of losses and weights and
exits 1 if they exceed the tolerance (cuDNN kernels are not bitwise deterministic, so
"exactly" is within float rounding). Needs CUDA: CUDA graphs exist nowhere else.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import torch

from mario.algos.dqn.algorithm import dqn_loss
from mario.algos.dqn.learner import Learner
from mario.models import FRAME_SIZE, MarioNet


def _batches(n: int, size: int, n_actions: int, device: torch.device) -> list[dict[str, Any]]:
    g = torch.Generator(device=device).manual_seed(1)
    shape = (size, 4, FRAME_SIZE, FRAME_SIZE)

    def frames() -> torch.Tensor:
        return torch.randint(0, 256, shape, dtype=torch.uint8, device=device, generator=g)

    return [
        {
            "obs": frames(),
            "next_obs": frames(),
            "action": torch.randint(0, n_actions, (size,), device=device, generator=g),
            "reward": torch.rand(size, device=device, generator=g) * 10,
            "discount": torch.full((size,), 0.9**5, device=device),
            "weight": torch.rand(size, device=device, generator=g) + 0.5,
        }
        for _ in range(n)
    ]


def _max_diff(a: MarioNet, b: MarioNet) -> float:
    return max(
        (x - y).abs().max().item()
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def compare(amp: bool, updates: int, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    net = MarioNet(5, 4, dueling=True).to(device)
    twin = copy.deepcopy(net)
    kwargs = {"lr": 1e-3, "target_update_every": 10, "amp": amp, "loss_fn": dqn_loss}
    eager = Learner(net, **kwargs)  # type: ignore[arg-type]
    graphed = Learner(twin, cuda_graph=True, **kwargs)  # type: ignore[arg-type]
    assert graphed.cuda_graph and not eager.cuda_graph
    batches = _batches(updates, 64, 5, device)
    loss_diff = 0.0
    for batch in batches:
        a, b = eager.update(batch), graphed.update(batch)
        loss_diff = max(loss_diff, abs(a["loss"] - b["loss"]) / max(1.0, abs(a["loss"])))
    captured = graphed._graph is not None
    weights = _max_diff(net, twin)

    # resume: the graphed learner's state into a fresh graphed learner, then both go on
    resumed_net = copy.deepcopy(twin)
    resumed = Learner(resumed_net, cuda_graph=True, **kwargs)  # type: ignore[arg-type]
    resumed.load_state_dict(copy.deepcopy(graphed.state_dict()))
    for batch in batches[: updates // 2]:
        eager.update(batch)
        resumed.update(batch)
    return {
        "amp": amp,
        "updates": updates,
        "captured": captured,
        "max_rel_loss_diff": loss_diff,
        "max_weight_diff": weights,
        "max_weight_diff_after_resume": _max_diff(net, resumed_net),
        "target_syncs": [eager.target_syncs, graphed.target_syncs],
        "capturable_after_load": all(g["capturable"] for g in resumed.optimizer.param_groups),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cuda_graph_check: needs CUDA (CUDA graphs exist nowhere else)", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True  # the same conv algorithms in both learners
    device = torch.device("cuda")
    rows = [compare(amp, args.updates, device) for amp in (False, True)]
    # fp32: rounding only; bf16: the same casts in both, still rounding-level
    ok = all(
        r["captured"]
        and r["capturable_after_load"]
        and r["max_rel_loss_diff"] < (1e-3 if r["amp"] else 1e-4)
        and r["max_weight_diff_after_resume"] < (1e-2 if r["amp"] else 1e-3)
        for r in rows
    )
    result = {"ok": ok, "rows": rows}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
