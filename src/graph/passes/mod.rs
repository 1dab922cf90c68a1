//! Optimization passes over the IR.
