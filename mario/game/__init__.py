"""The game: Super Mario Bros on nes-py with the Gymnasium API, and where episodes start.

``rules`` computes the stock game's reward, termination and ``info`` the same way on either
emulator backend (``backends``; ``_classic`` makes the old one run on NumPy 2); ``options``
names and checks stages, action sets and pipeline arguments without loading the emulator;
``env`` is the one env factory that training, evaluation and replays share; ``archive``
starts training episodes from the agent's own save states (Go-Explore's return).
"""
