"""What a run leaves on disk: atomic ``checkpoints``, ``run_folders`` read without torch, and
``tracking`` (metrics.jsonl, W&B, TensorBoard, learning curves)."""
