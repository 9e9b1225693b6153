"""VSR-Net: Visual Spatio-Temporal Relation-Enhanced Network (Han et al.)."""
