"""PPO (clipped surrogate, GAE): ``settings`` (its config keys), ``spec`` (how mario uses
it), ``algorithm`` (rollouts, advantages, the loss and the update)."""
