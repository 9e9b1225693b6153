"""Datasets in the field's formats (HGR's feature release), frame sampling and batch encoding; torch-free."""
