//! `avac audit ARTIFACT [--provenance FILE | --target NAME]`.

use crate::audit::{self, AuditOptions, Verdict};
use crate::declaration::Loaded;
use crate::engine::BuildOptions;
use clap::Args;
use std::path::PathBuf;

/// Exit code when the provenance does not match the artifact (altered record).
pub const EXIT_PROVENANCE: i32 = 5;

/// Arguments of `avac audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// The released artifact (.onnx, .tar).
    artifact: PathBuf,
    /// The provenance statement (default: ARTIFACT.provenance.json beside it, else the build definition inside the artifact).
    #[arg(long, conflicts_with = "target")]
    provenance: Option<PathBuf>,
    /// Rebuild this target of the current declaration instead of the recorded one.
    #[arg(long)]
    target: Option<String>,
    /// Keep the rebuilt outputs in this directory.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Never touch the network (sources must be in the store).
    #[arg(long)]
    offline: bool,
    /// Seed the store from files in this directory (hash-checked).
    #[arg(long)]
    from: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the audit; exit 0 reproducible, 4 differs, 5 provenance mismatch.
pub fn run(a: AuditArgs, current: &Loaded, threads: usize) -> Result<i32, Box<dyn std::error::Error>> {
    let o = AuditOptions {
        provenance: a.provenance,
        target: a.target,
        keep: a.keep,
        build: BuildOptions {
            out: PathBuf::new(),
            offline: a.offline,
            from: a.from,
            threads,
            store: crate::store::Store::default_root()?,
            exe: std::env::current_exe()?,
            ort_python: None,
        },
    };
    let r = audit::audit(&a.artifact, Some(current), &o)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.render());
    }
    Ok(match r.verdict {
        Verdict::Reproducible => 0,
        Verdict::Differs => super::EXIT_DIFFERS,
        Verdict::ProvenanceMismatch => EXIT_PROVENANCE,
    })
}
