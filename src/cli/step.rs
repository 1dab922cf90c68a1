//! `avac build-step …`: the pieces of `avac build` the Nix rules run as
//! derivations (see `crate::engine::actions` and `rules/README.md`).

use crate::declaration::Loaded;
use crate::engine::actions::{self as step, Exec};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum StepCmd {
    /// Copy a pinned local file (a fixed-output derivation's builder); a wrong digest is reported with the fix.
    FetchLocal {
        /// The source's name.
        source: String,
        /// The file.
        #[arg(long)]
        file: PathBuf,
        /// The pinned sha256 (hex).
        #[arg(long)]
        sha256: String,
        /// Where to copy it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Materialise a declared source from its verified blobs, as `avac build` places it.
    Source {
        /// The source's name.
        source: String,
        /// `SOURCE=PATH`: the blob of the source (or of each part of a concat source).
        #[arg(long = "blob", value_parser = pair)]
        blobs: Vec<(String, PathBuf)>,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a target's parameter files (work/*.json) exactly as `avac build` does.
    Params {
        /// The target.
        target: String,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one step of a target as rules/plan.json gives it (command line and outputs checked against this avac's plan).
    Exec {
        /// The target.
        target: String,
        /// The step (`convert`, `export`, …).
        step: String,
        /// `REL=PATH`: copy PATH (a directory's entries, or a file) to REL in the scratch directory.
        #[arg(long = "in", value_parser = pair)]
        inputs: Vec<(String, PathBuf)>,
        /// An output of the step (a work path), copied to the output directory when it succeeds.
        #[arg(long)]
        keep: Vec<String>,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// The step's command line after `avac --threads N`.
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// Publish a target's outputs and provenance from its step outputs.
    Publish {
        /// The target.
        target: String,
        /// A step output directory (holding work/…).
        #[arg(long = "from")]
        from: Vec<PathBuf>,
        /// Leave out the reports (they carry timings): only the bytes pinned in golden/ and provenance.
        #[arg(long)]
        deterministic_only: bool,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

fn pair(s: &str) -> Result<(String, PathBuf), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=PATH, got `{s}`"))?;
    Ok((k.to_string(), PathBuf::from(v)))
}

/// Threads for a step: `--threads`, else Nix's `NIX_BUILD_CORES` (0 = all), else all cores.
fn threads(cli: Option<usize>) -> usize {
    let nix = std::env::var("NIX_BUILD_CORES").ok().and_then(|c| c.parse::<usize>().ok()).filter(|&n| n > 0);
    cli.filter(|&n| n > 0).or(nix).unwrap_or_else(rayon::current_num_threads)
}

pub(super) fn run(
    cmd: StepCmd,
    l: impl FnOnce() -> Result<Loaded, crate::declaration::DeclError>,
    cli_threads: Option<usize>,
) -> Result<i32, Box<dyn std::error::Error>> {
    match cmd {
        StepCmd::FetchLocal { source, file, sha256, out } => step::fetch_local(&source, &file, &sha256, &out)?,
        StepCmd::Source { source, blobs, out } => step::source(&l()?, &source, &blobs, &out)?,
        StepCmd::Params { target, out } => step::params(&l()?, &target, &out)?,
        StepCmd::Exec { target, step, inputs, keep, out, args } => {
            let exe = std::env::current_exe()?;
            let e = Exec { target: &target, step: &step, inputs, keep, out: &out, args, exe: &exe, threads: threads(cli_threads) };
            step::exec(&l()?, &e)?
        }
        StepCmd::Publish { target, from, deterministic_only, out } => {
            for (name, d) in step::publish(&l()?, &target, &from, &out, deterministic_only)? {
                println!("{d}  {name}");
            }
        }
    }
    Ok(0)
}
