"""mario: train pixel-based Double-DQN agents to play Super Mario Bros, and watch them play."""

from mario.env import ACTION_SETS, MarioEnv, make_env, make_vec_env

__version__ = "0.1.0"
__all__ = ["ACTION_SETS", "MarioEnv", "__version__", "make_env", "make_vec_env"]
