"""Exporters of livesound's networks to ONNX (and, from the engines issue on, TensorRT)."""
