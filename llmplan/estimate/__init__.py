"""Pure estimators: memory, FLOPs, time and cost, scaling laws. No printing, no I/O beyond reading inputs."""
