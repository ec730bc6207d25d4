"""Running trials and comparisons: config, trainer (loop, checkpoints, resume), compare."""
