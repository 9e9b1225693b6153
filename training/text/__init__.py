"""Text side: caption parsing (torch-free) and word-level text features."""
