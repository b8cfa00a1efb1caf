"""Basics every layer uses: errors, options and configs, group specs, optional extras, imports by path,
interrupts, checkpoints and run directories."""
