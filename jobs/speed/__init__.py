"""Speed layer: the event simulator and the streaming job that merges events exactly once into silver."""
