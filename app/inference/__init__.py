"""Model registry, ONNX Runtime sessions, providers and per-family pre/post-processing."""
