//! kerf runtime (in progress).
