"""Playing: agents from checkpoints or ``pretrained`` (shipped) files, ``episodes`` for
evaluation and replays, and ``video`` (H.264 MP4 or GIF with an overlay)."""
