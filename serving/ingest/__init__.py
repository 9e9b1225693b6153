"""Ingest beyond pre-extracted features: raw video decoding, the frame backbone, bulk ingest on Ray."""
