"""MCSAN: multi-level cross-modal semantic alignment network (Nian et al., Mathematics 2022)."""
