"""PPO (clipped surrogate, GAE) behind the algorithm protocol."""

from mario.algos.ppo.algorithm import PPO, ActorCriticPolicy, gae, ppo_loss

__all__ = ["PPO", "ActorCriticPolicy", "gae", "ppo_loss"]
