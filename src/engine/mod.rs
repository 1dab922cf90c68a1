//! The build engine: one plan per target, and the ways it is run.
//!
//! - [`plan`]: a target's steps as data (typed inputs, outputs, command
//!   line, environment) — a pure function of the declaration.
//! - [`plan_file`]: every target's plan as `rules/plan.json`, the file the
//!   Nix rules read (generated, committed, checked for drift).
//! - [`runner`]: `avac build`, the local engine: every step in one scratch
//!   directory, outputs published atomically.
//! - [`actions`]: `avac build-step …`, the pieces another engine (Nix) runs
//!   as its own actions: one source, the parameter files, one step, publish.

pub mod actions;
pub mod plan;
pub mod plan_file;
pub mod runner;

pub use plan::{plan, Input, Plan, Step};
pub use runner::{build, BuildError, BuildOptions, BuildResult};
