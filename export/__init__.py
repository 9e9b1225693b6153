"""Export: towers and scorer -> ONNX (TensorRT on a GPU) -> a versioned Triton model repository."""
