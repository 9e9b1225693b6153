"""VSE++ global-only baseline."""
