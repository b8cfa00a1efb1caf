"""Model-based pieces: the ensemble world model, the CEM planner, and known reward and termination
functions for model rollouts."""
