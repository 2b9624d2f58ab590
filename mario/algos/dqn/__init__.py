"""Double DQN (n-step, dueling, prioritized replay): ``settings`` (its config keys),
``spec`` (how mario uses it), ``algorithm`` (acting, the target and the loss, on a page),
``learner`` (the update, CUDA-graphed), ``replay`` and ``sumtree`` (the replay memory),
``exploration`` (ε and Boltzmann)."""
