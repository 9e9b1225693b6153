"""The HTTP/JSON API: every method of ``strata.v1.Strata`` as ``POST /strata.v1.Strata/<Method>`` with its request
message as JSON (protobuf's JSON mapping), answered by the gateway over gRPC, with an OpenAPI description at
``/openapi.json`` and a search page at ``/``. A small ASGI app (Starlette, served by uvicorn) over the gateway's stub; ``strata up`` runs it as
its own process on the ``http_address`` / ``http_port`` settings."""
