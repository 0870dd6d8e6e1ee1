//! ONNX frontend (in progress).
