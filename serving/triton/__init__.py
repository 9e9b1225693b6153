"""The Triton side of serving: the real server, its client and version swaps (torch-free)."""
