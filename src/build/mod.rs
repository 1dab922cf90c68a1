//! Targets and their pins, the local runner, provenance.
//!
//! One declaration file, `rules/targets.toml`, lists sources and targets;
//! `avac build` and the Nix rules both read it. A copy is embedded in the
//! binary (with the in-repo data files it pins) so that `avac build` works
//! from any directory.

pub mod atomic;
pub mod decl;
pub mod runner;

pub use decl::{AlcTarget, AonTarget, DeclError, Declaration, Loaded, Target};
pub use runner::{build, BuildError, BuildOptions, BuildResult};
