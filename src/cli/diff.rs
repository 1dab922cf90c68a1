//! `avac diff A B [--json]`: where, and by how much, two artifacts differ
//! (see [`crate::diff`]). Exit 0 when the files are the same bytes,
//! [`super::EXIT_DIFFERS`] when they differ, 1 when a file cannot be read
//! or parsed (the message names it).

use clap::Args;
use std::path::PathBuf;

/// Arguments of `avac diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The reference file (A): an ONNX model, a package (.tar, .tar.zst), safetensors, GGUF or any file.
    a: PathBuf,
    /// The file compared with it (B); changes read A → B.
    b: PathBuf,
    /// Print the comparison as JSON (stable: ordered, no NaN) instead of text.
    #[arg(long)]
    json: bool,
}

/// Compares the two files and prints the result.
pub fn run(args: DiffArgs) -> Result<i32, Box<dyn std::error::Error>> {
    let d = crate::diff::diff_paths(&args.a, &args.b)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", d.render());
    }
    Ok(if d.identical() { 0 } else { super::EXIT_DIFFERS })
}
