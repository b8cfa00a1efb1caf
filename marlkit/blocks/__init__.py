"""Algorithm building blocks: the trust-region solver, returns (GAE, n-step), the replay buffer, update
and exploration schedules."""
