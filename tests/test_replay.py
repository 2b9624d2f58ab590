"""Tests of mario.replay.ReplayMemory against a fake pixel env whose frames encode their origin.

Set MARIO_TEST_DEVICE=cuda to run the same tests with the memory on a GPU.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mario.algos.dqn.replay import ReplayMemory
from mario.bench.replay import bench_replay

DEVICE = os.environ.get("MARIO_TEST_DEVICE", "cpu")
FRAME = (5, 6)
KEYS = ("obs", "action", "reward", "next_obs", "discount", "weight", "index")


class PixelVecEnv:
    """``num_envs`` fake envs whose frames encode (env, episode, step) in their pixels.

    Episodes have random lengths and end terminated or truncated at random. ``step()`` returns
    the arguments of one ``ReplayMemory.add`` call (a vector env that auto-resets in the same
    step). The env also keeps its own record of the slots each env's stream should hold (one
    per transition, one extra per episode end) to derive what is sampleable.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        stack: int = 4,
        seed: int = 0,
        min_len: int = 1,
        max_len: int = 9,
    ) -> None:
        self.num_envs = num_envs
        self.stack = stack
        self.min_len = min_len
        self.max_len = max_len
        self.rng = np.random.default_rng(seed)
        self.episode = [0] * num_envs
        self.t = [0] * num_envs
        self.length: dict[tuple[int, int], int] = {}
        self.terminal: dict[tuple[int, int], bool] = {}
        self.actions: dict[tuple[int, int, int], int] = {}
        self.slots: list[list[tuple[int, int] | None]] = [[] for _ in range(num_envs)]
        for env in range(num_envs):
            self._new_episode(env)

    def _new_episode(self, env: int) -> None:
        key = (env, self.episode[env])
        self.length[key] = int(self.rng.integers(self.min_len, self.max_len + 1))
        self.terminal[key] = bool(self.rng.random() < 0.5)

    @staticmethod
    def reward(env: int, ep: int, t: int) -> float:
        return float(t + 1) + 0.25 * env + (ep % 8) / 16  # exact in float32

    @staticmethod
    def frame(env: int, ep: int, t: int) -> np.ndarray:
        f = np.full(FRAME, (7 * env + 13 * ep + 29 * t) % 256, dtype=np.uint8)
        f.flat[:4] = (env, ep % 256, ep // 256, t)
        return f

    @staticmethod
    def decode(frame: np.ndarray) -> tuple[int, int, int]:
        env, ep_lo, ep_hi, t = (int(v) for v in frame.flat[:4])
        return env, ep_lo + 256 * ep_hi, t

    def stack_at(self, env: int, ep: int, t: int) -> np.ndarray:
        """The observation at step t: FrameStack pads an episode's start with its first frame."""
        return np.stack(
            [self.frame(env, ep, max(0, t - self.stack + 1 + j)) for j in range(self.stack)]
        )

    def step(self) -> dict[str, np.ndarray]:
        obs, next_obs, action, reward, terminated, truncated = ([] for _ in range(6))
        for env in range(self.num_envs):
            ep, t = self.episode[env], self.t[env]
            length = self.length[(env, ep)]
            a = int(self.rng.integers(0, 7))
            self.actions[(env, ep, t)] = a
            ended = t + 1 == length
            obs.append(self.stack_at(env, ep, t))
            next_obs.append(self.stack_at(env, ep, t + 1))
            action.append(a)
            reward.append(self.reward(env, ep, t))
            terminated.append(ended and self.terminal[(env, ep)])
            truncated.append(ended and not self.terminal[(env, ep)])
            self.slots[env].append((ep, t))
            if ended:
                self.slots[env].append(None)  # the final frame's slot
                self.episode[env] += 1
                self.t[env] = 0
                self._new_episode(env)
            else:
                self.t[env] = t + 1
        return {
            "obs": np.stack(obs),
            "action": np.array(action),
            "reward": np.array(reward),
            "terminated": np.array(terminated),
            "truncated": np.array(truncated),
            "next_obs": np.stack(next_obs),
        }

    def cut(self) -> None:
        """A resume: every episode in flight ends here, truncated; new episodes follow."""
        for env in range(self.num_envs):
            ep, t = self.episode[env], self.t[env]
            if t == 0:
                continue
            self.length[(env, ep)] = t
            self.terminal[(env, ep)] = False
            self.slots[env].append(None)  # the final frame's slot
            self.episode[env] += 1
            self.t[env] = 0
            self._new_episode(env)

    def sampleable(self, capacity_per_env: int, n_step: int) -> set[tuple[int, int, int]]:
        """Transitions whose stack, n-step future and next stack are all still stored."""
        out = set()
        for env, slots in enumerate(self.slots):
            written, oldest = len(slots), len(slots) - capacity_per_env
            for p in range(max(0, oldest), written):
                if slots[p] is None:
                    continue
                ep, t = slots[p]
                k = min(n_step, self.length[(env, ep)] - t)
                if p + k < written and p - min(self.stack - 1, t) >= oldest:
                    out.add((env, ep, t))
        return out

    def expected(self, env: int, ep: int, t: int, n_step: int, gamma: float) -> dict:
        length = self.length[(env, ep)]
        k = min(n_step, length - t)
        reward = sum(gamma**j * self.reward(env, ep, t + j) for j in range(k))
        terminated = t + k == length and self.terminal[(env, ep)]
        return {
            "obs": self.stack_at(env, ep, t),
            "next_obs": self.stack_at(env, ep, t + k),
            "action": self.actions[(env, ep, t)],
            "reward": reward,
            "discount": 0.0 if terminated else gamma**k,
        }


def add(memory: ReplayMemory, step: dict[str, np.ndarray]) -> None:
    memory.add(
        step["obs"],
        step["action"],
        step["reward"],
        step["terminated"],
        step["truncated"],
        step["next_obs"],
    )


def assert_sample_is(b: dict[str, np.ndarray], i: int, want: dict[str, Any]) -> None:
    """Row ``i`` of a sampled batch (as NumPy) is exactly the fake env's transition ``want``."""
    np.testing.assert_array_equal(b["obs"][i], want["obs"])
    np.testing.assert_array_equal(b["next_obs"][i], want["next_obs"])
    assert b["action"][i] == want["action"]
    assert b["reward"][i] == pytest.approx(want["reward"], rel=1e-6)
    assert b["discount"][i] == pytest.approx(want["discount"], rel=1e-6)


def check_batch(
    batch, fake: PixelVecEnv, memory: ReplayMemory, size: int
) -> list[tuple[int, int, int]]:
    """Assert every sample equals the fake env's truth; return the (env, episode, step) keys."""
    assert set(batch.keys()) == set(KEYS)
    for key in KEYS:  # every column: one row per sample, on the memory's device
        assert batch[key].shape[0] == size, key
        assert batch[key].device.type == torch.device(DEVICE).type, key
    shape = (size, memory.stack, *FRAME)
    dtypes = {"obs": torch.uint8, "next_obs": torch.uint8, "action": torch.int64}
    dtypes |= {"reward": torch.float32, "discount": torch.float32, "weight": torch.float32}
    for key, dtype in (*dtypes.items(), ("index", torch.int64)):
        assert batch[key].dtype == dtype, key
    assert batch["obs"].shape == shape and batch["next_obs"].shape == shape
    b = {key: batch[key].cpu().numpy() for key in KEYS}
    valid = fake.sampleable(memory.capacity_per_env, memory.n_step)
    keys = []
    for i in range(size):
        env, ep, t = fake.decode(b["obs"][i, -1])
        assert (env, ep, t) in valid, f"sampled an invalid transition {(env, ep, t)}"
        assert b["index"][i] % memory.num_envs == env
        assert_sample_is(b, i, fake.expected(env, ep, t, memory.n_step, memory.gamma))
        assert 0.0 < b["weight"][i] <= 1.0
        if not memory.prioritized:
            assert b["weight"][i] == 1.0
        keys.append((env, ep, t))
    return keys


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("n_step", [1, 3])
def test_samples_equal_the_env_after_wraparound(n_step: int, prioritized: bool) -> None:
    torch.manual_seed(0)
    fake = PixelVecEnv(3, seed=n_step + 2 * prioritized)
    memory = ReplayMemory(
        90,
        3,
        frame_shape=FRAME,
        n_step=n_step,
        gamma=0.9,
        device=DEVICE,
        prioritized=prioritized,
    )
    assert len(memory) == 0
    with pytest.raises(ValueError, match="no sampleable"):
        memory.sample(4)
    rng = np.random.default_rng(1)
    for step in range(300):  # ~10 wrap-arounds of each env's 30-slot stream
        add(memory, fake.step())
        if step % 20 == 19:
            assert len(memory) == len(fake.sampleable(30, n_step))
            batch = memory.sample(64)
            check_batch(batch, fake, memory, 64)
            memory.update_priority(batch["index"], torch.from_numpy(rng.uniform(0.5, 2.0, 64)))
    ends = [(e, ep) for (e, ep), length in fake.length.items() if ep < fake.episode[e]]
    assert any(fake.terminal[k] for k in ends) and not all(fake.terminal[k] for k in ends)
    # Many samples: every sampleable transition shows up, nothing else ever does.
    seen: set[tuple[int, int, int]] = set()
    for _ in range(50):
        seen.update(check_batch(memory.sample(64), fake, memory, 64))
    assert seen == fake.sampleable(30, n_step)


def _hand_checked_memory() -> ReplayMemory:
    """n=3, gamma=0.5, stack 2: an episode that terminates, one truncated, one unfinished;
    frame values 10 * episode + step, actions the step, rewards as listed."""
    memory = ReplayMemory(40, 1, frame_shape=(2, 2), stack=2, n_step=3, gamma=0.5, device=DEVICE)
    episodes = [([1.0, 2.0, 3.0, 4.0], "terminated"), ([10.0, 20.0, 30.0], "truncated")]
    episodes.append(([100.0, 200.0], "running"))
    for ep, (rewards, end) in enumerate(episodes):
        for t, r in enumerate(rewards):
            last = t == len(rewards) - 1
            term = np.array([last and end == "terminated"])
            trunc = np.array([last and end == "truncated"])
            memory.add(_obs(ep, t), np.array([t]), np.array([r]), term, trunc, _obs(ep, t + 1))
    return memory


def _obs(ep: int, t: int) -> np.ndarray:
    frame = [np.full((2, 2), 10 * ep + max(0, s), dtype=np.uint8) for s in (t - 1, t)]
    return np.stack(frame)[None]


def _sampled(memory: ReplayMemory) -> dict[tuple[int, int], tuple[float, float, int]]:
    """(episode, step) -> (n-step reward, discount, step of next_obs) of 500 samples, each
    sample's stacks checked against the episode's frames."""
    torch.manual_seed(0)
    batch = memory.sample(500)
    got = {}
    for i in range(500):
        o, nxt = batch["obs"][i].cpu().numpy(), batch["next_obs"][i].cpu().numpy()
        ep, t = divmod(int(o[-1, 0, 0]), 10)
        np.testing.assert_array_equal(o, _obs(ep, t)[0])
        k = int(nxt[-1, 0, 0]) - 10 * ep
        np.testing.assert_array_equal(nxt, _obs(ep, k)[0])
        got[(ep, t)] = (float(batch["reward"][i]), float(batch["discount"][i]), k)
        assert int(batch["action"][i]) == t
    return got


def test_nstep_return_hand_checked() -> None:
    """n=3, gamma=0.5: termination and truncation inside the 3 steps, an unfinished episode."""
    memory = _hand_checked_memory()
    expected = {
        (0, 0): (1 + 0.5 * 2 + 0.25 * 3, 0.125, 3),  # 3 steps, episode goes on
        (0, 1): (2 + 0.5 * 3 + 0.25 * 4, 0.0, 4),  # terminates at the 3rd step
        (0, 2): (3 + 0.5 * 4, 0.0, 4),
        (0, 3): (4.0, 0.0, 4),
        (1, 0): (10 + 0.5 * 20 + 0.25 * 30, 0.125, 3),  # truncated at the 3rd: bootstraps
        (1, 1): (20 + 0.5 * 30, 0.25, 3),
        (1, 2): (30.0, 0.5, 3),
    }  # (2, 0) and (2, 1) wait for their 3rd step
    assert len(memory) == len(expected)
    assert _sampled(memory) == expected


def test_a_shorter_horizon_sums_fewer_rewards_with_its_own_gamma() -> None:
    """``set_horizon(2, 0.25)`` on the same memory: 2-step sums discounted by 0.25 from the
    same sampleable slots (a slot still needs its 3 steps, as a longer horizon may return);
    back to (3, 0.5), the first sums again. A horizon longer than n_step is refused."""
    memory = _hand_checked_memory()
    memory.set_horizon(2, 0.25)
    assert (memory.horizon, memory.gamma) == (2, 0.25)
    assert _sampled(memory) == {
        (0, 0): (1 + 0.25 * 2, 0.0625, 2),
        (0, 1): (2 + 0.25 * 3, 0.0625, 3),
        (0, 2): (3 + 0.25 * 4, 0.0, 4),  # terminates at the 2nd step
        (0, 3): (4.0, 0.0, 4),
        (1, 0): (10 + 0.25 * 20, 0.0625, 2),
        (1, 1): (20 + 0.25 * 30, 0.0625, 3),  # truncated at the 2nd: bootstraps
        (1, 2): (30.0, 0.25, 3),
    }
    memory.set_horizon(3, 0.5)
    assert _sampled(memory)[(0, 0)] == (1 + 0.5 * 2 + 0.25 * 3, 0.125, 3)
    with pytest.raises(ValueError, match=re.escape("steps must be in 1..n_step=3, got 4")):
        memory.set_horizon(4, 0.5)
    with pytest.raises(ValueError, match="gamma must be in"):
        memory.set_horizon(2, 1.5)


def test_stack_reaching_into_overwritten_slots_is_never_sampled() -> None:
    """One long episode on a tiny stream: the oldest live slots lack their stack's frames."""
    fake = PixelVecEnv(1, min_len=100, max_len=100)
    memory = ReplayMemory(12, 1, frame_shape=FRAME, n_step=2, device=DEVICE)
    for _ in range(40):
        add(memory, fake.step())
    # 12 live slots; the 3 oldest have stacks reaching overwritten frames, the 2 newest
    # wait for their 2-step future: 7 sampleable.
    assert len(memory) == 7 == len(fake.sampleable(12, 2))
    torch.manual_seed(0)
    steps = Counter(key[2] for key in check_batch(memory.sample(2000), fake, memory, 2000))
    assert set(steps) == set(range(31, 38))


def test_stack_one_accepts_frames_without_stack_axis() -> None:
    memory = ReplayMemory(20, 2, frame_shape=FRAME, stack=1, device=DEVICE)
    fake = PixelVecEnv(2, stack=1)
    for _ in range(12):
        step = fake.step()
        step["obs"], step["next_obs"] = step["obs"][:, 0], step["next_obs"][:, 0]
        add(memory, step)
    check_batch(memory.sample(32), fake, memory, 32)


@pytest.mark.parametrize("prioritized", [False, True])
def test_bytes_per_transition_at_84x84(prioritized: bool) -> None:
    memory = ReplayMemory(10_000, 8, prioritized=prioritized, device=DEVICE)
    assert memory.bytes_per_transition() <= 8192
    assert memory.nbytes() >= 10_000 * 84 * 84  # the frames are really there, once each
    # Filled with ~50-step episodes, per sampleable transition (final slots included).
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(8, 4, 84, 84), dtype=np.uint8)
    zeros = np.zeros(8)
    for _ in range(1250 + 10):
        ends = rng.random(8) < 0.02
        memory.add(frames, zeros, zeros, ends, np.zeros(8, bool), frames)
    assert memory.nbytes() / len(memory) <= 8192


def test_priorities_change_sampling_and_weights() -> None:
    torch.manual_seed(0)
    fake = PixelVecEnv(2, min_len=100, max_len=100)
    memory = ReplayMemory(200, 2, frame_shape=FRAME, prioritized=True, alpha=0.6, beta=0.4)
    for _ in range(60):
        add(memory, fake.step())
    everything = torch.arange(memory._valid.numel())  # update_priority ignores invalid slots
    memory.update_priority(everything, 1.0)
    hot = int(memory.sample(1)["index"][0])
    memory.update_priority(torch.tensor([hot]), torch.tensor([100.0]))

    batch = memory.sample(4000)
    check_batch(batch, fake, memory, 4000)
    counts = Counter(batch["index"].tolist())
    share = counts[hot] / 4000
    hot_p, cold_p = (100 + 1e-6) ** 0.6, (1 + 1e-6) ** 0.6
    want = hot_p / (hot_p + (len(memory) - 1) * cold_p)  # ~0.15 against 1/len ~ 0.009
    assert abs(share - want) < 0.03
    weight = batch["weight"]
    assert bool(((weight > 0) & (weight <= 1)).all())
    is_hot = batch["index"] == hot
    assert torch.allclose(weight[is_hot], torch.tensor((hot_p / cold_p) ** -0.4))
    assert torch.allclose(weight[~is_hot], torch.tensor(1.0))

    # New transitions get the largest priority seen so far.
    old = set(fake.sampleable(100, 1))
    for _ in range(5):
        add(memory, fake.step())
    batch = memory.sample(4000)
    keys = check_batch(batch, fake, memory, 4000)
    new = [k not in old for k in keys]
    assert torch.allclose(
        batch["weight"][torch.tensor(new)], torch.tensor((hot_p / cold_p) ** -0.4)
    )

    with pytest.raises(ValueError, match="index"):
        memory.update_priority(torch.tensor([10**6]), 1.0)
    with pytest.raises(ValueError, match="priority"):
        memory.update_priority(torch.tensor([hot]), -1.0)
    with pytest.raises(ValueError, match="priority"):
        memory.update_priority(torch.tensor([hot]), float("nan"))


def test_update_priority_is_a_noop_when_uniform() -> None:
    fake = PixelVecEnv(2)
    memory = ReplayMemory(40, 2, frame_shape=FRAME)
    for _ in range(20):
        add(memory, fake.step())
    torch.manual_seed(3)
    before = memory.sample(64)
    memory.update_priority(before["index"], torch.full((64,), 50.0))
    torch.manual_seed(3)
    after = memory.sample(64)
    assert all(torch.equal(after[key], before[key]) for key in before)


@pytest.mark.parametrize("prioritized", [False, True])
def test_save_load_cuts_episodes_in_flight_and_continues(tmp_path: Path, prioritized: bool) -> None:
    """A resumed run starts new episodes: the loaded memory keeps every stored transition,
    ends each episode that was in flight as a truncation at the seam (its newest transitions
    bootstrap from the newest frame) and lets no stack or n-step return cross it."""
    settings = {"frame_shape": FRAME, "n_step": 2, "prioritized": prioritized, "device": DEVICE}
    fake = PixelVecEnv(3, seed=5)
    memory = ReplayMemory(90, 3, **settings)
    rng = np.random.default_rng(0)
    for _ in range(120):
        add(memory, fake.step())
        if not len(memory):
            continue
        batch = memory.sample(8)
        memory.update_priority(batch["index"], torch.from_numpy(rng.uniform(0, 3, 8)))
    memory.save(tmp_path / "replay")
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == [
        "frames.u8",
        "replay.json",
        "state.pt",
    ]
    valid_before = memory._valid.clone()

    restored = ReplayMemory(90, 3, **settings)
    restored.load(tmp_path / "replay")
    fake.cut()  # the truth: every episode in flight ends (truncated) at the seam
    assert restored.nbytes() == memory.nbytes()
    # only the oldest few go (the seam's extra slot takes one more slot of each ring)
    lost = int((valid_before & ~restored._valid).sum())
    assert lost <= restored.num_envs * restored.stack and len(restored) >= len(memory) - lost
    for seed in range(3):
        torch.manual_seed(seed)
        check_batch(restored.sample(64), fake, restored, 64)
    for _ in range(50):  # the resumed run's new episodes
        add(restored, fake.step())
    for seed in range(3):
        torch.manual_seed(seed)
        check_batch(restored.sample(64), fake, restored, 64)

    with pytest.raises(ValueError, match="stack=4"):
        ReplayMemory(90, 3, **{**settings, "stack": 2}).load(tmp_path / "replay")
    with pytest.raises(FileNotFoundError):
        restored.load(tmp_path / "missing")


@pytest.mark.parametrize("prioritized", [False, True])
def test_streams_added_apart_and_cut_hold_the_same_transitions(prioritized: bool) -> None:
    """Remote actors send their envs' steps on their own schedule, newest frames only: adding
    each env's step alone (``streams``), in a shuffled order, stores what whole vector steps
    do; ``cut`` ends the episodes in flight (a replaced actor) like a resume does."""
    settings = {"frame_shape": FRAME, "n_step": 2, "prioritized": prioritized, "device": DEVICE}
    fake = PixelVecEnv(3, seed=7)
    memory = ReplayMemory(90, 3, **settings)
    rng = np.random.default_rng(0)
    for _ in range(100):
        step = fake.step()
        for env in rng.permutation(3):
            memory.add(
                step["obs"][env : env + 1, -1],
                step["action"][env : env + 1],
                step["reward"][env : env + 1],
                step["terminated"][env : env + 1],
                step["truncated"][env : env + 1],
                step["next_obs"][env : env + 1, -1],
                streams=[env],
            )
    assert len(memory) == len(fake.sampleable(30, 2))
    check_batch(memory.sample(64), fake, memory, 64)
    memory.cut([2, 0, 1])
    fake.cut()
    assert len(memory) == len(fake.sampleable(30, 2))
    for _ in range(40):
        add(memory, fake.step())
    for seed in range(3):
        torch.manual_seed(seed)
        check_batch(memory.sample(64), fake, memory, 64)
    with pytest.raises(ValueError, match="repeat"):
        memory.add(
            *(
                np.repeat(step[k][:1], 2, 0)
                for k in ("obs", "action", "reward", "terminated", "truncated", "next_obs")
            ),
            streams=[1, 1],
        )
    with pytest.raises(ValueError, match="streams"):
        memory.cut([3])


def _state(memory: ReplayMemory) -> dict[str, Any]:
    out = {key: value.clone() for key, value in memory._meta.items()}
    out.update(
        frames=memory._frames.cpu().clone(),
        written=memory._written.clone(),
        ep_pos_next=memory._ep_pos_next.clone(),
        num_valid=memory._num_valid,
    )
    if memory._tree is not None:
        out["priorities"] = memory._tree.leaves().clone()
    return out


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("capacity", [150, 48])
def test_extend_stores_exactly_what_adds_do(prioritized: bool, capacity: int) -> None:
    """A remote actor's batch of T steps in one ``extend`` leaves the memory exactly as T
    ``add`` calls do (every slot, flag, counter and priority), over many wrap-arounds, for
    two actors' streams in turn; a stream too short for a batch takes the adds' path."""
    settings = {"frame_shape": FRAME, "n_step": 3, "prioritized": prioritized, "device": DEVICE}
    fake = PixelVecEnv(4, seed=11, max_len=6)
    one, many = ReplayMemory(capacity, 4, **settings), ReplayMemory(capacity, 4, **settings)
    for _ in range(12):
        steps = [fake.step() for _ in range(8)]
        for first in (0, 2):  # actor 0: streams 0-1, actor 1: streams 2-3
            part = {k: np.stack([st[k][first : first + 2] for st in steps]) for k in steps[0]}
            part["obs"], part["next_obs"] = part["obs"][:, :, -1], part["next_obs"][:, :, -1]
            keys = ("obs", "action", "reward", "terminated", "truncated", "next_obs")
            for t in range(8):
                one.add(*(part[k][t] for k in keys), streams=[first, first + 1])
            many.extend(*(part[k] for k in keys), streams=[first, first + 1])
            a, b = _state(one), _state(many)
            for key in a:
                assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key
    check_batch(many.sample(32), fake, many, 32)


@pytest.mark.parametrize(("capacity", "num_envs"), [(240, 8), (60, 2), (90, 1)])
def test_a_memory_saved_with_other_envs_or_size_is_transplanted(
    tmp_path: Path, capacity: int, num_envs: int
) -> None:
    """A run resumed with another --num-envs (or --replay-size) keeps its replay memory: each
    saved stream is copied into the new streams, newest first where it does not all fit,
    and every sample is still exactly a transition of the fake env."""
    settings = {"frame_shape": FRAME, "n_step": 3, "device": DEVICE}
    fake = PixelVecEnv(3, seed=9)
    memory = ReplayMemory(120, 3, **settings)
    for _ in range(100):
        add(memory, fake.step())
    memory.save(tmp_path / "replay")
    moved = ReplayMemory(capacity, num_envs, **{**settings, "n_step": 2})
    moved.load(tmp_path / "replay")
    fake.cut()
    assert len(moved) > 0.5 * min(len(memory), moved.capacity)

    def exact(batch) -> None:
        b = {key: batch[key].cpu().numpy() for key in KEYS}
        for i in range(len(b["index"])):
            env, ep, t = fake.decode(b["obs"][i, -1])
            assert_sample_is(b, i, fake.expected(env, ep, t, moved.n_step, moved.gamma))

    torch.manual_seed(0)
    exact(moved.sample(256))
    other = PixelVecEnv(num_envs, seed=11)  # the resumed run's envs: new episodes
    other.episode = [1000 + e for e in range(num_envs)]
    for env in range(num_envs):
        other._new_episode(env)
    for _ in range(30):
        step = other.step()
        add(moved, step)
    torch.manual_seed(1)
    b = {key: value.cpu().numpy() for key, value in moved.sample(256).items()}
    for i in range(256):  # old and new transitions, none of them mixed
        env, ep, t = fake.decode(b["obs"][i, -1])
        truth = other if ep >= 1000 else fake
        assert_sample_is(b, i, truth.expected(env, ep, t, moved.n_step, moved.gamma))


def test_bad_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="capacity // num_envs"):
        ReplayMemory(20, 4)
    with pytest.raises(ValueError, match="n_step"):
        ReplayMemory(100, 1, n_step=0)
    with pytest.raises(ValueError, match="gamma"):
        ReplayMemory(100, 1, gamma=1.5)
    memory = ReplayMemory(40, 2, frame_shape=FRAME)
    step = PixelVecEnv(2).step()
    with pytest.raises(ValueError, match="uint8"):
        memory.add(
            step["obs"] / 255,
            *(step[k] for k in ("action", "reward")),
            step["terminated"],
            step["truncated"],
            step["next_obs"],
        )
    with pytest.raises(ValueError, match="shape"):
        memory.add(
            step["obs"][:, :2],
            step["action"],
            step["reward"],
            step["terminated"],
            step["truncated"],
            step["next_obs"],
        )
    with pytest.raises(ValueError, match="action"):
        memory.add(
            step["obs"],
            step["action"][:1],
            step["reward"],
            step["terminated"],
            step["truncated"],
            step["next_obs"],
        )
    add(memory, step)
    with pytest.raises(ValueError, match="batch_size"):
        memory.sample(0)


def test_bench_replay_reports_costs() -> None:
    result = bench_replay(
        capacity=2_000, num_envs=4, batch_size=8, adds=20, samples=10, device=DEVICE
    )
    assert result["add_us"] > 0 and result["sample_us"] > 0
    assert result["bytes_per_transition"] <= 8192
    result = bench_replay(
        capacity=2_000, num_envs=4, adds=20, samples=10, prioritized=True, n_step=3, device=DEVICE
    )
    assert result["update_priority_us"] > 0
