"""Training: the loop and what runs beside it.

``setup`` checks a run before anything starts (config, folder, resume, ``preflight``'s
resources); ``runner`` is the loop (act, store, learn, receive) over a ``collector`` of
emulators; ``hooks`` are the jobs on their own schedules (logs, evaluations, checkpoints,
progress); ``pause_points`` let tests hold the process at an exact moment.
"""
