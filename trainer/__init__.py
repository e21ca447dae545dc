"""Hi-GRPO training of the ar3d policy: configuration, data, rollouts, loss, checkpoints, logging."""
