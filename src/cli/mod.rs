//! The `avac` command line: parses arguments, runs the library, prints, and
//! maps errors to exit codes (0 ok, 1 failure, 2 usage, 3 validation gate,
//! 4 differs (`diff`, `audit`), 5 provenance does not match (`audit`)).

mod alc;
mod aon;
mod audit;
mod diff;
mod progress;
mod step;

use crate::declaration::{DeclError, Loaded};
use crate::engine::{self, plan_file, BuildOptions};
use crate::store::{self, FetchOptions, Store};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit code of a failed validation gate.
pub const EXIT_GATE: i32 = 3;
/// Exit code when two artifacts differ (`avac diff`) or a rebuild differs (`avac audit`).
pub const EXIT_DIFFERS: i32 = 4;

#[derive(Parser)]
#[command(name = "avac", version, about = "A hermetic, bit-reproducible compiler for on-device models")]
struct Cli {
    /// Worker threads (outputs are identical for any value; default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// The declaration file (default: rules/targets.toml above the current directory, else the built-in copy).
    #[arg(long, global = true)]
    targets: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List declared targets.
    Targets,
    /// Build a target: fetch, run every step hermetically, validate, publish.
    Build {
        /// Target name (see `avac targets`).
        target: String,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Never touch the network.
        #[arg(long)]
        offline: bool,
        /// Seed the store from files in this directory (hash-checked).
        #[arg(long)]
        from: Option<PathBuf>,
        /// A Python with onnxruntime: the validation report also gives onnxruntime latency.
        #[arg(long)]
        ort_python: Option<PathBuf>,
    },
    /// Print a target's plan (steps with their inputs, outputs and command lines), or write/check rules/plan.json.
    Plan(PlanArgs),
    /// Fill the store with the named sources (default: every fetchable source).
    Fetch {
        /// Source names.
        sources: Vec<String>,
        /// Never touch the network.
        #[arg(long)]
        offline: bool,
        /// Seed the store from files in this directory (hash-checked).
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Download sources and write their sha256 (and size) pins into the declaration.
    Lock {
        /// Source names.
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// Digests of a file or directory for pins: sha256 hex, SRI, and Nix's NAR hash (base-32).
    Hash {
        /// A file or directory.
        path: PathBuf,
    },
    /// Rebuild a released artifact from its recorded pins and compare: exit 0 reproducible, 4 differs, 5 provenance mismatch.
    Audit(audit::AuditArgs),
    /// Compare two artifacts (ONNX, tar package, safetensors, GGUF, bytes): exit 0 identical, 4 differ.
    Diff(diff::DiffArgs),
    /// Print a human-readable summary of an ONNX model.
    Summary {
        /// The model.
        model: PathBuf,
    },
    /// AON pipeline steps (each a pure function from files to files).
    #[command(subcommand)]
    Aon(aon::AonCmd),
    /// ALC pipeline steps (Gemma 3 → q4bf16_1 package).
    #[command(subcommand)]
    Alc(alc::AlcCmd),
    /// The parts of `avac build` that the Nix rules run as derivations (see rules/README.md).
    #[command(subcommand)]
    BuildStep(step::StepCmd),
}

/// `avac plan`.
#[derive(clap::Args)]
struct PlanArgs {
    /// The target (or `--all`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    target: Option<String>,
    /// Every target, as the plan file `rules/plan.json` holds them.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of a readable listing.
    #[arg(long)]
    json: bool,
    /// With --all: write the plan file here (atomically).
    #[arg(long, requires = "all", conflicts_with = "check")]
    out: Option<PathBuf>,
    /// With --all: exit 1 unless this file is what `--out` would write.
    #[arg(long, requires = "all")]
    check: Option<PathBuf>,
}

/// The bytes the declaration was read from.
fn declaration_bytes(l: &Loaded) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    if l.repo_root.is_none() && !l.path.is_file() {
        return Ok(crate::declaration::EMBEDDED.as_bytes().to_vec());
    }
    std::fs::read(&l.path).map_err(|e| format!("{}: {e}", l.path.display()).into())
}

fn plan(a: PlanArgs, l: &Loaded) -> Result<i32, Box<dyn std::error::Error>> {
    if a.all {
        let declaration = declaration_bytes(l)?;
        if let Some(c) = &a.check {
            let committed = std::fs::read(c).map_err(|e| format!("{}: {e}", c.display()))?;
            if let Err(at) = plan_file::check(l, &declaration, &committed)? {
                return Err(format!(
                    "{} is not the plan of {} ({at})\nhelp: run `avac plan --all --out {}` and commit it",
                    c.display(),
                    l.path.display(),
                    c.display()
                )
                .into());
            }
        } else {
            let bytes = plan_file::generate(l, &declaration)?;
            match &a.out {
                Some(o) => crate::atomic::write(o, &bytes).map_err(|e| format!("{}: {e}", o.display()))?,
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?
                }
            }
        }
        return Ok(0);
    }
    let name = a.target.expect("clap: a target unless --all");
    if a.json {
        let mut b = serde_json::to_vec_pretty(&plan_file::target_entry(l, &name)?)?;
        b.push(b'\n');
        use std::io::Write;
        std::io::stdout().write_all(&b)?;
        return Ok(0);
    }
    let p = engine::plan(l, &name)?;
    let t = l.target(&name)?;
    println!("target {name} (rule {}) -> {}", t.rule(), t.artifact());
    for f in &p.files {
        println!("param  {}", f.path);
    }
    for s in &p.steps {
        println!("step {}", s.name);
        for i in &s.inputs {
            match i {
                engine::Input::Source { source, at } => println!("  in   source {source} at {at}"),
                engine::Input::Param { path } => println!("  in   param {path}"),
                engine::Input::Step { step, path } => println!("  in   {path} from {step}"),
            }
        }
        for o in &s.outputs {
            println!("  out  {o}");
        }
        println!("  run  avac --threads N {}", s.args.join(" "));
    }
    for o in &p.publish {
        let kind = if o.deterministic { "pinned" } else { "report" };
        println!("publish {} -> {} ({kind})", o.path, o.name);
    }
    Ok(0)
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    crate::interrupt::install();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let threads = cli.threads.unwrap_or(0);
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn load(targets: &Option<PathBuf>) -> Result<Loaded, DeclError> {
    match targets {
        Some(p) => Loaded::read(p),
        None => Loaded::discover(),
    }
}

fn store_root() -> Result<PathBuf, store::StoreError> {
    Store::default_root()
}

fn run(cli: Cli) -> Result<i32, Box<dyn std::error::Error>> {
    match cli.cmd {
        Cmd::Plan(a) => plan(a, &load(&cli.targets)?),
        Cmd::Targets => {
            let l = load(&cli.targets)?;
            for (name, t) in &l.decl.targets {
                let mark = if t.is_default() { " (default)" } else { "" };
                println!("{name}{mark}\n    {}", t.description());
            }
            Ok(0)
        }
        Cmd::Build { target, out, offline, from, ort_python } => {
            let l = load(&cli.targets)?;
            let opts = BuildOptions {
                out,
                offline,
                from,
                threads: cli.threads.unwrap_or_else(rayon::current_num_threads),
                store: store_root()?,
                exe: std::env::current_exe()?,
                ort_python,
            };
            let r = engine::build(&l, &target, &opts)?;
            for (p, d) in &r.outputs {
                println!("{d}  {}", p.display());
            }
            Ok(0)
        }
        Cmd::Fetch { sources, offline, from } => {
            let l = load(&cli.targets)?;
            let store = Store::open(store_root()?)?;
            let root = l.repo_root.clone().unwrap_or_else(|| PathBuf::from("."));
            let mut opts = FetchOptions::from_env(root);
            opts.offline = offline;
            opts.from = from;
            let names: Vec<String> = if sources.is_empty() {
                l.decl.sources.iter().filter(|(_, s)| s.is_fetchable() && s.is_locked()).map(|(n, _)| n.clone()).collect()
            } else {
                sources
            };
            for n in names {
                // A concat source fetches its parts and joins them.
                let p = store::fetch_declared(&store, &l.decl.sources, &n, &opts)?;
                println!("{}  {n}", p.display());
            }
            Ok(0)
        }
        Cmd::Lock { sources } => {
            let l = load(&cli.targets)?;
            let Some(root) = l.repo_root.clone() else {
                return Err("`avac lock` edits rules/targets.toml: run it inside the repository".into());
            };
            let store = Store::open(store_root()?)?;
            let opts = FetchOptions::from_env(&root);
            let mut text = std::fs::read_to_string(&l.path)?;
            let mut sources = sources;
            for n in &sources {
                l.decl.sources.get(n).ok_or_else(|| format!("unknown source {n:?}"))?;
            }
            // Concat sources last, each joined from its parts' pins as of the
            // edited text, so `avac lock PART… CONCAT` works in one go.
            sources.sort_by_key(|n| matches!(l.decl.sources.get(n), Some(store::Source::Concat(_))));
            let mut current = l.clone();
            for n in &sources {
                let pin = store::lock_declared(&store, &current.decl.sources, n, &opts)?;
                text = store::update_pin_in_toml(&text, n, &pin)?;
                current = Loaded::parse(&text, &l.path, l.repo_root.clone())?;
                println!("{}  {n}", pin.sha256);
            }
            crate::atomic::write(&l.path, text.as_bytes())?;
            // The pins are part of every engine's plan: keep rules/plan.json in step.
            let plan_path = l.path.with_file_name("plan.json");
            if plan_path.is_file() {
                crate::atomic::write(&plan_path, &plan_file::generate(&current, text.as_bytes())?)?;
                println!("updated {}", plan_path.display());
            }
            Ok(0)
        }
        Cmd::Audit(a) => {
            let l = load(&cli.targets)?;
            audit::run(a, &l, cli.threads.unwrap_or_else(rayon::current_num_threads))
        }
        Cmd::Hash { path } => {
            let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let nar = store::nar::nar_sha256(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if meta.is_file() {
                let (hex, _) = store::hash_file(&path)?;
                let flat = hex::decode(&hex).expect("hex from hash_file");
                println!("sha256      {hex}");
                println!("sri         {}", store::nar::sri(&flat));
            }
            println!("nar-sha256  {}", store::nar::nix_base32(&nar));
            println!("nar-sri     {}", store::nar::sri(&nar));
            Ok(0)
        }
        Cmd::Diff(args) => diff::run(args),
        Cmd::Summary { model } => {
            let bytes = std::fs::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
            let m = crate::graph::onnx::from_bytes(&bytes, &model.display().to_string())?;
            print!("{}", crate::graph::summary::summary(&m, bytes.len()));
            Ok(0)
        }
        Cmd::Aon(cmd) => aon::run(cmd),
        Cmd::Alc(cmd) => alc::run(cmd),
        Cmd::BuildStep(cmd) => step::run(cmd, || load(&cli.targets), cli.threads),
    }
}
