"""Recipe stages, trainer, optimisers and schedules, checkpoints."""
