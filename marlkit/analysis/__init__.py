"""Running many runs and reading their results: sweeps, reports, the statistics protocol, games and
cross-play, marl-eval export, tuning."""
