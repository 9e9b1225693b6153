"""Clients: the Python client library and the ``strata`` command-line dispatcher."""
