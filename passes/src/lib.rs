//! e-graph passes (in progress).
