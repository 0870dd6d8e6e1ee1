//! Vectorised math routines (in progress).
