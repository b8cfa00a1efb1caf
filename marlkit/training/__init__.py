"""The training loop and what it reads and writes: run configs, the experiment loop, rollouts,
evaluation, loggers, and reading finished runs."""
