"""Evaluation, the top floor: measuring Strata, its quality (``strata evaluate`` through PyTorch, ONNX Runtime,
Triton or the whole service) and its speed (``strata bench NAME``). It may import every other package; none
imports it, so nothing on the request path carries a benchmark."""
