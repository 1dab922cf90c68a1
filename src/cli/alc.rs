//! `avac alc <step>`: the ALC (Gemma 3) pipeline steps.

use crate::alc::package::{NativeLib, Package};
use crate::alc::quantize::AlcQuantizeParams;
use crate::alc::validate::AlcValidateParams;
use crate::alc::{self, checkpoint::Checkpoint};
use crate::atomic;
use crate::model::gemma3::Gemma3;
use crate::package::{elf::Abi, tar};
use clap::Subcommand;
use std::path::{Path, PathBuf};

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
    /// Packs a parameter directory and native libraries into one deterministic tar.
    Package {
        /// The parameter directory from `avac alc quantize`.
        #[arg(long)]
        dir: PathBuf,
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

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<(), Box<dyn std::error::Error>> {
    let mut b = serde_json::to_vec_pretty(v)?;
    b.push(b'\n');
    atomic::write(path, &b).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn parse_lib(s: &str) -> Result<NativeLib, Box<dyn std::error::Error>> {
    let mut it = s.splitn(3, '=');
    match (it.next(), it.next(), it.next()) {
        (Some(abi), Some(name), Some(file)) => Ok(NativeLib { abi: abi.parse::<Abi>()?, name: name.into(), file: file.into() }),
        _ => Err(format!("--lib {s:?}: expected ABI=NAME=FILE").into()),
    }
}

fn generate(model: &Gemma3, tok: &tokenizers::Tokenizer, eos: &[u32], prompt: &str, max_new: usize) -> Result<(), Box<dyn std::error::Error>> {
    let ids = tok.encode(prompt, true).map_err(|e| format!("encoding the prompt: {e}"))?.get_ids().to_vec();
    let new = model.greedy(&ids, max_new, eos)?;
    let text = tok.decode(&new, true).map_err(|e| format!("decoding: {e}"))?;
    println!("{}", serde_json::json!({ "prompt_ids": ids, "ids": new, "text": text }));
    Ok(())
}

fn tokenizer_json(c: &dyn Checkpoint) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let files = c.tokenizer_files().map_err(|e| format!("{}: {e}", c.display()))?;
    let json = files.into_iter().find(|(n, _)| n == "tokenizer.json").map(|(_, b)| b);
    Ok(json.ok_or_else(|| format!("{}: no tokenizer.json", c.display()))?)
}

pub(super) fn run(cmd: AlcCmd) -> Result<i32, Box<dyn std::error::Error>> {
    match cmd {
        AlcCmd::Tokenizer { source, out } => {
            let json = alc::with_checkpoint(&source, tokenizer_json)?;
            atomic::write(&out, &json).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(0)
        }
        AlcCmd::Quantize { source, params, group_size, out, report, timing } => {
            let params: AlcQuantizeParams = match params {
                Some(p) => read_json(&p)?,
                None => AlcQuantizeParams { group_size, ..AlcQuantizeParams::default() },
            };
            let start = std::time::Instant::now();
            let r = alc::with_checkpoint(&source, |c| alc::quantize::quantize(c, &params, &out))?;
            let secs = start.elapsed().as_secs_f64();
            eprintln!("quantized {} params to {} ({} records, {} shards, {:.3} bits/param) in {secs:.1} s", r.source_params, out.display(), r.records, r.shards, r.bits_per_param);
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
        AlcCmd::Package { dir, libs, build_definition, out, zstd } => {
            let libs = libs.iter().map(|s| parse_lib(s)).collect::<Result<Vec<_>, _>>()?;
            let options = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => tar::Options::from_source_date_epoch(&v)?,
                Err(_) => tar::Options::default(),
            };
            let (w, z) = alc::package::assemble(&dir, &libs, build_definition.as_deref(), &out, &options, zstd)?;
            println!("{}  {}", w.sha256, out.display());
            if let Some(z) = z {
                println!("{}  {}.zst", z.sha256, out.display());
            }
            Ok(0)
        }
        AlcCmd::Validate { package, source, text, params, report } => {
            let params: AlcValidateParams = match params {
                Some(p) => read_json(&p)?,
                None => AlcValidateParams::default(),
            };
            let text = std::fs::read_to_string(&text).map_err(|e| format!("{}: {e}", text.display()))?;
            let pkg = Package::open(&package)?;
            let v = alc::with_checkpoint(&source, |c| alc::validate::validate(&pkg, &package.display().to_string(), c, &text, &params))?;
            write_json(&report, &v.report)?;
            let r = &v.report;
            eprintln!(
                "perplexity {:.4} (source {:.4}, ratio {:.4}), top-1 agreement {:.4}, mean KL {:.5}",
                r["perplexity"]["package"], r["perplexity"]["source"], r["perplexity"]["ratio"], r["top1_agreement"], r["kl"]["mean"]
            );
            if v.failures.is_empty() {
                Ok(0)
            } else {
                for f in &v.failures {
                    eprintln!("gate failed: {f}");
                }
                Ok(3)
            }
        }
        AlcCmd::Score { package, source, text, max_tokens, out } => {
            let text = std::fs::read_to_string(&text).map_err(|e| format!("{}: {e}", text.display()))?;
            let score = |model: &Gemma3, tok: &tokenizers::Tokenizer| -> Result<(), Box<dyn std::error::Error>> {
                let mut ids = tok.encode(text.as_str(), true).map_err(|e| format!("encoding the text: {e}"))?.get_ids().to_vec();
                ids.truncate(max_tokens.unwrap_or(usize::MAX));
                let (top, lp) = alc::validate::score(model, &ids)?;
                let ppl = crate::model::gemma3::perplexity(&lp);
                write_json(&out, &serde_json::json!({ "ids": ids, "argmax": top, "log_probs": lp, "perplexity": ppl }))
            };
            match (package, source) {
                (Some(p), _) => {
                    let pkg = Package::open(&p)?;
                    let model = Gemma3::load(&pkg.chat.model, &pkg).map_err(|e| format!("{}: {e}", p.display()))?;
                    score(&model, &pkg.tokenizer()?)?;
                }
                (None, Some(s)) => alc::with_checkpoint(&s, |c| {
                    let tok = tokenizers::Tokenizer::from_bytes(tokenizer_json(c)?).map_err(|e| format!("{}: tokenizer: {e}", c.display()))?;
                    let model = Gemma3::load(c.config(), c).map_err(|e| format!("{}: {e}", c.display()))?;
                    score(&model, &tok)
                })?,
                (None, None) => return Err("give a PACKAGE or --source".into()),
            }
            Ok(0)
        }
        AlcCmd::Run { package, source, prompt, max_new } => match (package, source) {
            (Some(p), _) => {
                let pkg = Package::open(&p)?;
                let model = Gemma3::load(&pkg.chat.model, &pkg).map_err(|e| format!("{}: {e}", p.display()))?;
                generate(&model, &pkg.tokenizer()?, &pkg.chat.ids.eos, &prompt, max_new)?;
                Ok(0)
            }
            (None, Some(s)) => {
                alc::with_checkpoint(&s, |c| {
                    let tok = tokenizers::Tokenizer::from_bytes(tokenizer_json(c)?).map_err(|e| format!("{}: tokenizer: {e}", c.display()))?;
                    let model = Gemma3::load(c.config(), c).map_err(|e| format!("{}: {e}", c.display()))?;
                    generate(&model, &tok, &c.special_ids().eos, &prompt, max_new)
                })?;
                Ok(0)
            }
            (None, None) => Err("give a PACKAGE or --source".into()),
        },
    }
}
