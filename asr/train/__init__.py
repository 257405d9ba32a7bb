"""Training: optimisers and schedules (``optim``); the trainer and checkpoints come with training."""
