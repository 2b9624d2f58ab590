"""Double DQN (n-step, dueling, prioritized replay) behind the algorithm protocol."""

from mario.algos.dqn.algorithm import DQN, QPolicy

__all__ = ["DQN", "QPolicy"]
