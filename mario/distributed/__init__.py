"""Training across machines on a Ray cluster (``pip install "mario[distributed]"``).

Ape-X style DQN: remote actors (:mod:`.actor`), each stepping a few emulators with a CPU copy
of the policy and its own ε, send compressed batches of transitions (:mod:`.wire`) to the
learner, whose loop takes them from :class:`.collector.RayCollector` instead of local
emulator processes. PPO: the same actors play synchronous rollouts with the learner's newest
weights (:class:`.rollouts.RolloutCollector`). :mod:`.cluster` joins the cluster and checks
it can hold the actors.
Ray is imported only here, only when ``--ray-address`` is given.
"""
