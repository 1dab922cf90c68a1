//! Targets and their pins, the local runner, provenance, audit.
//!
//! One declaration file, `rules/targets.toml`, lists sources and targets;
//! `avac build` and the Nix rules both read it. A copy is embedded in the
//! binary (with the in-repo data files it pins) so that `avac build` works
//! from any directory.

pub mod audit;
pub mod decl;
pub mod plan;
pub mod provenance;
pub mod runner;
pub mod step;

pub use decl::{AlcTarget, AonTarget, DeclError, Declaration, Loaded, Target};
pub use plan::{plan, Plan, Step};
pub use runner::{build, BuildError, BuildOptions, BuildResult};
