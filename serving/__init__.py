"""Serving: the gRPC gateway, the Triton client side, the Milvus index and CPU-side score fusion."""
