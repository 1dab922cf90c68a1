//! `avac alc <step>`: the ALC (Gemma 3) pipeline steps.

use crate::alc;
use crate::alc::checkpoint::{Checkpoint, CheckpointError};
use crate::alc::compile::{CompileError, HostLib, Toolchain};
use crate::alc::package::{NativeLib, Package, PackageError};
use crate::alc::quantize::{AlcQuantizeParams, QuantizeError};
use crate::alc::validate::{AlcValidateParams, ValidateError};
use crate::atomic;
use crate::formats::tokenizer::Tokenizer;
use crate::model::gemma3::{Gemma3, Gemma3Error};
use crate::package::elf::{Abi, ElfError};
use crate::package::tar::{self, TarError};
use clap::Subcommand;
use std::path::{Path, PathBuf};

/// Failures of `avac alc`: each step's own error, and the command line's.
/// All exit 1 (a failed validation gate is not an error: it exits 3).
#[derive(Debug, thiserror::Error)]
pub(super) enum AlcError {
    /// The checkpoint could not be opened.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Quantizing failed.
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    /// Assembling or opening a package failed.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// Compiling the model library failed, or its toolchain is missing.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// Validating failed (not a gate: the comparison itself).
    #[error(transparent)]
    Validate(#[from] ValidateError),
    /// `SOURCE_DATE_EPOCH` is not a timestamp.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// A model could not be loaded or run.
    #[error("{model}: {source}")]
    Model {
        /// The package or checkpoint.
        model: String,
        /// The error.
        source: Gemma3Error,
    },
    /// The checkpoint has no `tokenizer.json`, or it cannot be loaded.
    #[error("{model}: tokenizer: {why}")]
    Tokenizer {
        /// The package or checkpoint.
        model: String,
        /// What is wrong.
        why: String,
    },
    /// A text could not be tokenized or ids detokenized.
    #[error("{what}: {why}")]
    Tokenize {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The tokenizer's message.
        why: String,
    },
    /// A `--lib` argument is not `ABI=NAME=FILE`.
    #[error("--lib {arg:?}: expected ABI=NAME=FILE")]
    LibArg {
        /// The argument.
        arg: String,
    },
    /// A `--lib` argument names an unknown ABI.
    #[error("--lib {arg:?}: {source}")]
    Abi {
        /// The argument.
        arg: String,
        /// The error.
        source: ElfError,
    },
    /// A parameter file is not the JSON the step takes.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Neither a package nor a source was given.
    #[error("give a PACKAGE or --source")]
    NoModel,
}

#[derive(Subcommand)]
pub(super) enum AlcCmd {
    /// The tokenizer a checkpoint carries (a GGUF's embedded one converted), as tokenizer.json.
    Tokenizer {
        /// The checkpoint: a GGUF file or a Hugging Face directory.
        #[arg(long, alias = "gguf")]
        source: PathBuf,
        /// Output tokenizer.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Quantizes a checkpoint to a q4bf16_1 parameter directory (tensor cache, chat config, tokenizer).
    Quantize {
        /// The checkpoint: a GGUF file or a Hugging Face directory.
        #[arg(long)]
        source: PathBuf,
        /// Parameters as JSON (`{"group_size": 128}`); else --group-size.
        #[arg(long)]
        params: Option<PathBuf>,
        /// Group size when no --params is given.
        #[arg(long, default_value_t = 128)]
        group_size: usize,
        /// The calibration text (UTF-8), for parameters with `gptq`.
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the quantize report (JSON; deterministic: same bytes on every run).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Where to write this run's wall time, MB/s and peak RSS (JSON; measurements,
        /// so kept out of the report, whose bytes a Nix `--check` rebuild compares).
        #[arg(long)]
        timing: Option<PathBuf>,
    },
    /// Compiles the model library (Android arm64-v8a archive + host .so) with the pinned TVM.
    Compile {
        /// The parameter directory from `avac alc quantize` (its chat config and tensor cache).
        #[arg(long)]
        dir: PathBuf,
        /// The toolchain's wheels (toolchains/tvm/requirements.txt, hash-checked).
        #[arg(long)]
        wheels: PathBuf,
        /// CPython 3.11: an absolute path, or a name looked up in /usr/bin, /usr/local/bin, /bin.
        #[arg(long, default_value = alc::compile::DEFAULT_PYTHON)]
        python: String,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Packs a parameter directory and native libraries into one deterministic tar.
    Package {
        /// The parameter directory from `avac alc quantize`.
        #[arg(long)]
        dir: PathBuf,
        /// The model library: `avac alc compile`'s output directory (packaged under lib/arm64-v8a/).
        #[arg(long)]
        model_lib: Option<PathBuf>,
        /// A native library: ABI=NAME=FILE (e.g. arm64-v8a=libtvm_runtime.so=path/to/file); repeatable.
        #[arg(long = "lib")]
        libs: Vec<String>,
        /// The build definition to carry as `avac-build-definition.json` (written by the build plan).
        #[arg(long)]
        build_definition: Option<PathBuf>,
        /// Output .tar.
        #[arg(long)]
        out: PathBuf,
        /// Also write OUT.zst with the pinned zstd parameters.
        #[arg(long)]
        zstd: bool,
    },
    /// Compares a package with its unquantized source on a fixed text; exit 3 when a gate fails.
    Validate {
        /// The package: .tar or directory.
        #[arg(long)]
        package: PathBuf,
        /// The source checkpoint (GGUF file or HF directory).
        #[arg(long)]
        source: PathBuf,
        /// The text (UTF-8; at least the target's minimum tokens).
        #[arg(long)]
        text: PathBuf,
        /// Gates and prompts as JSON (defaults otherwise).
        #[arg(long)]
        params: Option<PathBuf>,
        /// Where to write the report (JSON).
        #[arg(long)]
        report: PathBuf,
        /// The model library (`avac alc compile`'s output): its host build is compared with the reference forward.
        #[arg(long, requires = "wheels")]
        model_lib: Option<PathBuf>,
        /// The toolchain's wheels, to run the model library.
        #[arg(long, requires = "model_lib")]
        wheels: Option<PathBuf>,
        /// CPython 3.11 for the toolchain (see `alc compile`).
        #[arg(long, default_value = alc::compile::DEFAULT_PYTHON)]
        python: String,
    },
    /// Per-position arg-max and log-probability of a text (with BOS) under a package or checkpoint, as JSON.
    Score {
        /// A package (.tar or directory written by avac).
        #[arg(conflicts_with = "source", required_unless_present = "source")]
        package: Option<PathBuf>,
        /// Or a checkpoint (GGUF file or HF directory), dequantized.
        #[arg(long)]
        source: Option<PathBuf>,
        /// The text (UTF-8).
        #[arg(long)]
        text: PathBuf,
        /// Score only the first N tokens.
        #[arg(long)]
        max_tokens: Option<usize>,
        /// Output JSON (`{"ids", "argmax", "log_probs", "perplexity"}`).
        #[arg(long)]
        out: PathBuf,
    },
    /// Greedy generation with the reference Gemma 3 forward, from a package or a checkpoint.
    Run {
        /// A package (.tar or directory written by avac).
        #[arg(conflicts_with = "source", required_unless_present = "source")]
        package: Option<PathBuf>,
        /// Or a checkpoint (GGUF file or HF directory), dequantized.
        #[arg(long, alias = "gguf")]
        source: Option<PathBuf>,
        /// Prompt text (BOS is added as the tokenizer says).
        #[arg(long)]
        prompt: String,
        /// New tokens at most.
        #[arg(long, default_value_t = 32)]
        max_new: usize,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AlcError + '_ {
    move |source| AlcError::Io { path: path.to_path_buf(), source }
}

/// Largest text file read (validation, scoring and calibration texts).
const MAX_TEXT_BYTES: u64 = 64 << 20;

/// A UTF-8 text file, refused past [`MAX_TEXT_BYTES`] before it is read.
fn read_text(path: &Path) -> Result<String, AlcError> {
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    if size > MAX_TEXT_BYTES {
        let e = std::io::Error::other(format!("{size} bytes; a text is at most {MAX_TEXT_BYTES}"));
        return Err(AlcError::Io { path: path.to_path_buf(), source: e });
    }
    std::fs::read_to_string(path).map_err(io_err(path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AlcError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| AlcError::Json { path: path.to_path_buf(), source })
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<(), AlcError> {
    let mut b = serde_json::to_vec_pretty(v).map_err(|source| AlcError::Json { path: path.to_path_buf(), source })?;
    b.push(b'\n');
    atomic::write(path, &b).map_err(io_err(path))
}

fn parse_lib(s: &str) -> Result<NativeLib, AlcError> {
    let mut it = s.splitn(3, '=');
    match (it.next(), it.next(), it.next()) {
        (Some(abi), Some(name), Some(file)) => {
            let abi = abi.parse::<Abi>().map_err(|source| AlcError::Abi { arg: s.to_string(), source })?;
            Ok(NativeLib { abi, name: name.into(), file: file.into() })
        }
        _ => Err(AlcError::LibArg { arg: s.to_string() }),
    }
}

fn encode(tok: &tokenizers::Tokenizer, text: &str, what: &'static str) -> Result<Vec<u32>, AlcError> {
    Ok(tok.encode(text, true).map_err(|e| AlcError::Tokenize { what, why: e.to_string() })?.get_ids().to_vec())
}

fn generate(model: &Gemma3, name: &str, tok: &tokenizers::Tokenizer, eos: &[u32], prompt: &str, max_new: usize) -> Result<(), AlcError> {
    let ids = encode(tok, prompt, "encoding the prompt")?;
    let new = model.greedy(&ids, max_new, eos).map_err(|source| AlcError::Model { model: name.to_string(), source })?;
    let text = tok.decode(&new, true).map_err(|e| AlcError::Tokenize { what: "decoding", why: e.to_string() })?;
    println!("{}", serde_json::json!({ "prompt_ids": ids, "ids": new, "text": text }));
    Ok(())
}

fn tokenizer_json(c: &dyn Checkpoint) -> Result<Vec<u8>, AlcError> {
    let files = c.tokenizer_files()?;
    let json = files.into_iter().find(|(n, _)| n == "tokenizer.json").map(|(_, b)| b);
    json.ok_or_else(|| AlcError::Tokenizer { model: c.display().to_string(), why: "no tokenizer.json".into() })
}

/// A checkpoint's tokenizer and model.
fn checkpoint_model(c: &dyn Checkpoint) -> Result<(Tokenizer, Gemma3), AlcError> {
    let tok =
        Tokenizer::from_bytes("tokenizer.json", tokenizer_json(c)?).map_err(|e| AlcError::Tokenizer { model: c.display().to_string(), why: e.to_string() })?;
    let model = Gemma3::load(c.config(), c).map_err(|source| AlcError::Model { model: c.display().to_string(), source })?;
    Ok((tok, model))
}

/// A package's model.
fn package_model(pkg: &Package, path: &Path) -> Result<Gemma3, AlcError> {
    Gemma3::load(&pkg.chat.model, pkg).map_err(|source| AlcError::Model { model: path.display().to_string(), source })
}

pub(super) fn run(cmd: AlcCmd) -> Result<i32, Box<dyn std::error::Error>> {
    Ok(run_step(cmd)?)
}

fn run_step(cmd: AlcCmd) -> Result<i32, AlcError> {
    match cmd {
        AlcCmd::Tokenizer { source, out } => {
            let json = alc::with_checkpoint(&source, tokenizer_json)?;
            atomic::write(&out, &json).map_err(io_err(&out))?;
            Ok(0)
        }
        AlcCmd::Quantize { source, params, group_size, calibration, out, report, timing } => {
            let params: AlcQuantizeParams = match params {
                Some(p) => read_json(&p)?,
                None => AlcQuantizeParams { group_size, ..AlcQuantizeParams::default() },
            };
            let text = calibration.as_deref().map(read_text).transpose()?;
            let start = std::time::Instant::now();
            let pb = super::progress::bar("calibrating layers");
            let mut progress = |done: usize, total: usize| {
                pb.set_length(total as u64);
                pb.set_position(done as u64);
            };
            let r = alc::with_checkpoint(&source, |c| alc::quantize::run(c, &params, text.as_deref(), &out, &mut progress).map_err(AlcError::from))?;
            pb.finish_and_clear();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "quantized {} params to {} ({} records, {} shards, {:.3} bits/param) in {secs:.1} s",
                r.source_params,
                out.display(),
                r.records,
                r.shards,
                r.bits_per_param
            );
            if let Some(path) = report {
                write_json(&path, &r)?;
            }
            if let Some(path) = timing {
                let measured = serde_json::json!({
                    "seconds": secs,
                    "source_f32_mb_per_s": r.source_f32_bytes as f64 / 1e6 / secs,
                    "peak_rss_bytes": alc::validate::peak_rss_bytes(),
                });
                write_json(&path, &measured)?;
            }
            Ok(0)
        }
        AlcCmd::Compile { dir, wheels, python, out } => {
            if out.exists() {
                return Err(AlcError::Io { path: out, source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists") });
            }
            let t = Toolchain::install(&python, &wheels)?;
            let threads = rayon::current_num_threads();
            let c = alc::compile::compile(&dir, &t, &out, threads)?;
            eprintln!("compiled model library {} into {}", c.model_lib, out.display());
            Ok(0)
        }
        AlcCmd::Package { dir, model_lib, libs, build_definition, out, zstd } => {
            let libs = libs.iter().map(|s| parse_lib(s)).collect::<Result<Vec<_>, _>>()?;
            let options = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => tar::Options::from_source_date_epoch(&v)?,
                Err(_) => tar::Options::default(),
            };
            let model_lib = model_lib.map(|d| alc::package::ModelLib { archive: d.join(alc::compile::ANDROID_LIB), manifest: d.join(alc::compile::ANDROID_MANIFEST) });
            let (w, z) = alc::package::assemble(&dir, &libs, model_lib.as_ref(), build_definition.as_deref(), &out, &options, zstd)?;
            println!("{}  {}", w.sha256, out.display());
            if let Some(z) = z {
                println!("{}  {}.zst", z.sha256, out.display());
            }
            Ok(0)
        }
        AlcCmd::Validate { package, source, text, params, report, model_lib, wheels, python } => {
            let params: AlcValidateParams = match params {
                Some(p) => read_json(&p)?,
                None => AlcValidateParams::default(),
            };
            let text = read_text(&text)?;
            let pkg = Package::open(&package)?;
            let host = match (model_lib, wheels) {
                (Some(dir), Some(w)) => Some(HostLib { toolchain: Toolchain::install(&python, &w)?, dir }),
                _ => None,
            };
            let r = alc::with_checkpoint(&source, |c| {
                alc::validate::validate(&pkg, &package.display().to_string(), c, &text, &params, host.as_ref()).map_err(AlcError::from)
            })?;
            write_json(&report, &r)?;
            eprintln!(
                "perplexity {:.4} (source {:.4}, ratio {:.4}), top-1 agreement {:.4}, mean KL {:.5}",
                r.perplexity.package, r.perplexity.source, r.perplexity.ratio, r.top1_agreement, r.kl.mean
            );
            if let Some(t) = &r.tvm {
                eprintln!(
                    "TVM model library vs reference forward: top-1 agreement {:.4}, perplexity {:.5} vs {:.5} ({:+.5}%), max |Δ log-prob| {:.2e}",
                    t.top1_agreement,
                    t.perplexity_tvm,
                    t.perplexity_reference,
                    t.perplexity_rel_diff * 100.0,
                    t.max_abs_log_prob_diff
                );
            }
            if r.passed() {
                Ok(0)
            } else {
                for f in &r.gates.failures {
                    eprintln!("gate failed: {f}");
                }
                Ok(3)
            }
        }
        AlcCmd::Score { package, source, text, max_tokens, out } => {
            let text = read_text(&text)?;
            let score = |model: &Gemma3, name: &str, tok: &tokenizers::Tokenizer| -> Result<(), AlcError> {
                let mut ids = encode(tok, &text, "encoding the text")?;
                ids.truncate(max_tokens.unwrap_or(usize::MAX));
                let (top, lp) = alc::validate::score(model, &ids).map_err(|source| AlcError::Model { model: name.to_string(), source })?;
                let ppl = crate::model::gemma3::perplexity(&lp);
                write_json(&out, &serde_json::json!({ "ids": ids, "argmax": top, "log_probs": lp, "perplexity": ppl }))
            };
            match (package, source) {
                (Some(p), _) => {
                    let pkg = Package::open(&p)?;
                    score(&package_model(&pkg, &p)?, &p.display().to_string(), pkg.tokenizer()?.hf())?;
                }
                (None, Some(s)) => alc::with_checkpoint(&s, |c| {
                    let (tok, model) = checkpoint_model(c)?;
                    score(&model, c.display(), tok.hf())
                })?,
                (None, None) => return Err(AlcError::NoModel),
            }
            Ok(0)
        }
        AlcCmd::Run { package, source, prompt, max_new } => match (package, source) {
            (Some(p), _) => {
                let pkg = Package::open(&p)?;
                generate(&package_model(&pkg, &p)?, &p.display().to_string(), pkg.tokenizer()?.hf(), &pkg.chat.ids.eos, &prompt, max_new)?;
                Ok(0)
            }
            (None, Some(s)) => {
                alc::with_checkpoint(&s, |c| {
                    let (tok, model) = checkpoint_model(c)?;
                    generate(&model, c.display(), tok.hf(), &c.special_ids().eos, &prompt, max_new)
                })?;
                Ok(0)
            }
            (None, None) => Err(AlcError::NoModel),
        },
    }
}
