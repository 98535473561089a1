"""Export: folded models to ONNX (fp32, int8), verified against PyTorch on the clip."""
