"""Networks over agent groups: group modules and MLPs, batched ensembles, policy heads, GRU helpers,
running normalizers."""
