//! The ALC package: a `q4bf16_1` parameter directory (what
//! [`super::quantize`] writes) plus pinned native libraries, as one
//! deterministic `.tar` (and optionally `.tar.zst`); and the reader that
//! loads a package, directory or archive, back into the reference runtime.
//!
//! # Layout inside the archive (flat, as MLC's runtime reads a model directory)
//!
//! ```text
//! mlc-chat-config.json
//! tensor-cache.json
//! params_shard_0.bin … params_shard_N.bin
//! tokenizer.json [tokenizer.model] [tokenizer_config.json]
//! lib/<abi>/<name>.so          only when the target declares native libraries
//! lib/arm64-v8a/<model_lib>.a    the model library, when the target compiles one
//! lib/arm64-v8a/<model_lib>.json its manifest (system-lib prefix, functions, parameters)
//! ```
//!
//! The model library (`avac alc compile`'s `model-arm64-v8a.a`) is a static
//! archive of system-lib objects, linked into the app as MLC's Android build
//! does; it is named after `mlc-chat-config.json`'s `model_lib`, and refused
//! unless its manifest's `system_lib_prefix` is that name's prefix (a chat
//! config naming another library) and every member is an AArch64 `ET_REL`
//! ELF object ([`elf::check_object`]).
//!
//! Every library is checked with [`crate::package::elf::check_lib`] against
//! the ABI it is declared for before anything is written; a mismatch names
//! the file (the seed's `UnsatisfiedLinkError` case).
//!
//! # Reading
//!
//! [`Package::open`] takes the directory or the `.tar`. An archive is first
//! checked whole by [`tar::list`] (checksums, safe paths, nothing after the
//! end) and extracted into a private temporary directory; then
//! [`tensor_cache::verify`] checks every shard's size and md5 and every
//! record's placement, and `mlc-chat-config.json` is parsed strictly. Only
//! then are tensors read. A [`Package`] is a [`Gemma3Weights`]: it undoes
//! the layout of the names table ([`names`]: dequantizes, splits
//! `gate_up_proj`, turns `1 + w` norms back into `w`) so the same forward
//! runs the source and the package.

use super::chat_config::{self, ChatConfig};
use crate::formats::tokenizer::{Tokenizer, TokenizerError};
use crate::model::gemma3::names::{self, Field, Kind, Name};
use crate::model::gemma3::{Gemma3Error, Gemma3Weights};
use crate::package::elf::{self, Abi};
use crate::package::tensor_cache::{self, Dtype, TensorCache};
use crate::package::{tar, BUILD_DEFINITION_FILE};
use crate::quant::q4::{self, Q4Tensor};
use std::path::{Path, PathBuf};

/// A native library to ship for one ABI.
#[derive(Clone, Debug)]
pub struct NativeLib {
    /// The ABI it must be built for.
    pub abi: Abi,
    /// The file to copy.
    pub file: PathBuf,
    /// Its name inside `lib/<abi>/`.
    pub name: String,
}

/// The compiled model library to ship (`avac alc compile`'s output directory).
#[derive(Clone, Debug)]
pub struct ModelLib {
    /// The static archive.
    pub archive: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
}

/// Failures assembling or reading a package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A library does not match its ABI, or is not a shared object.
    #[error("native library {name} for {abi}: {source}")]
    Lib {
        /// Name inside the package.
        name: String,
        /// Declared ABI.
        abi: Abi,
        /// The ELF check's error (names the file).
        source: elf::ElfError,
    },
    /// The model library does not fit the package: another name, another ABI, not an archive.
    #[error("model library {}: {why}", file.display())]
    ModelLib {
        /// The archive or manifest.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A library name is not a plain `.so` file name.
    #[error("native library name {name:?} must be a plain file name ending in .so")]
    LibName {
        /// The name.
        name: String,
    },
    /// The parameter directory is incomplete or has unexpected files.
    #[error("{dir}: {why}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Tar error.
    #[error(transparent)]
    Tar(#[from] tar::TarError),
    /// The `tokenizer.json` cannot be loaded (the error names it).
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Tensor cache error.
    #[error("{path}: {source}")]
    Cache {
        /// The package.
        path: String,
        /// The error.
        source: tensor_cache::TensorCacheError,
    },
    /// `mlc-chat-config.json` is not one the runtime reads.
    #[error("{path}: {source}")]
    ChatConfig {
        /// The package.
        path: String,
        /// The error.
        source: chat_config::ChatConfigError,
    },
    /// I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The tokenizer file the runtime and `alc run` encode with.
const TOKENIZER_JSON: &str = "tokenizer.json";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io { path: path.to_path_buf(), source }
}

/// A checked parameter directory.
struct Checked {
    /// Its files, sorted.
    files: Vec<String>,
    /// The parsed `mlc-chat-config.json`.
    chat: ChatConfig,
    /// The loaded `tokenizer.json`, when it carries one.
    tokenizer: Option<Tokenizer>,
}

/// The files of a parameter directory, checked: the chat config, the tensor
/// cache and its shards, the tokenizer files it lists (`tokenizer.json`
/// loaded, so a package never carries one that cannot encode), nothing
/// else. Errors name `shown` (the user's directory or archive), not `dir`.
fn dir_files(dir: &Path, shown: &Path) -> Result<Checked, PackageError> {
    let bad = |why: String| PackageError::Dir { dir: shown.to_path_buf(), why };
    let member_io = |name: &str| {
        let at = shown.join(name);
        move |source| PackageError::Io { path: at, source }
    };
    let cache = tensor_cache::verify(dir).map_err(|source| PackageError::Cache { path: shown.display().to_string(), source })?;
    let chat_bytes = std::fs::read(dir.join(chat_config::FILE)).map_err(member_io(chat_config::FILE))?;
    let chat = chat_config::parse(&chat_bytes).map_err(|source| PackageError::ChatConfig { path: shown.display().to_string(), source })?;
    let mut expected: Vec<String> = vec![chat_config::FILE.into(), tensor_cache::CACHE_FILE.into()];
    expected.extend(cache.records.iter().map(|s| s.data_path.clone()));
    for t in &chat.tokenizer_files {
        if !chat_config::TOKENIZER_FILES.contains(&t.as_str()) {
            return Err(bad(format!("tokenizer file {t:?} is not one of {:?}", chat_config::TOKENIZER_FILES)));
        }
        expected.push(t.clone());
    }
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).map_err(member_io(""))? {
        let e = e.map_err(member_io(""))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.file_type().map_err(member_io(&name))?.is_file() {
            return Err(bad(format!("{name} is not a regular file")));
        }
        found.push(name);
    }
    if found.iter().any(|f| f == BUILD_DEFINITION_FILE) {
        expected.push(BUILD_DEFINITION_FILE.into());
    }
    found.sort();
    expected.sort();
    if found != expected {
        let missing: Vec<_> = expected.iter().filter(|e| !found.contains(e)).collect();
        let extra: Vec<_> = found.iter().filter(|f| !expected.contains(f)).collect();
        return Err(bad(format!("files do not match the package layout (missing {missing:?}, unexpected {extra:?})")));
    }
    let tokenizer = match found.iter().any(|f| f == TOKENIZER_JSON) {
        true => Some(Tokenizer::load_as(&dir.join(TOKENIZER_JSON), shown.join(TOKENIZER_JSON).display().to_string())?),
        false => None,
    };
    Ok(Checked { files: found, chat, tokenizer })
}

/// Writes the package archive `out` from the parameter directory `dir`,
/// `libs` and, when given, the build definition file `definition` (stored as
/// [`BUILD_DEFINITION_FILE`]); with `zstd`, also `out` + `.zst`. Nothing is
/// written when a check fails. Returns the archive's (and compressed file's)
/// digest.
pub fn assemble(
    dir: &Path,
    libs: &[NativeLib],
    model_lib: Option<&ModelLib>,
    definition: Option<&Path>,
    out: &Path,
    options: &tar::Options,
    zstd: bool,
) -> Result<(tar::Written, Option<tar::Written>), PackageError> {
    let Checked { files, chat, .. } = dir_files(dir, dir)?;
    if files.iter().any(|f| f == BUILD_DEFINITION_FILE) {
        return Err(PackageError::Dir { dir: dir.to_path_buf(), why: format!("{BUILD_DEFINITION_FILE} belongs to the package, not the parameter directory") });
    }
    let mut inputs: Vec<tar::Input> = files.iter().map(|f| tar::Input { path: f.clone(), source: tar::Source::File(dir.join(f)), executable: false }).collect();
    if let Some(d) = definition {
        let bytes = std::fs::read(d).map_err(io_err(d))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| PackageError::Dir { dir: d.to_path_buf(), why: format!("not a JSON build definition: {e}") })?;
        if !v.is_object() {
            return Err(PackageError::Dir { dir: d.to_path_buf(), why: "a build definition is a JSON object".into() });
        }
        inputs.push(tar::Input { path: BUILD_DEFINITION_FILE.into(), source: tar::Source::File(d.to_path_buf()), executable: false });
    }
    for lib in libs {
        let plain = !lib.name.is_empty() && !lib.name.contains('/') && !lib.name.starts_with('.') && lib.name.ends_with(".so");
        if !plain {
            return Err(PackageError::LibName { name: lib.name.clone() });
        }
        elf::check_lib(&lib.file, lib.abi).map_err(|source| PackageError::Lib { name: lib.name.clone(), abi: lib.abi, source })?;
        inputs.push(tar::Input { path: format!("lib/{}/{}", lib.abi.name(), lib.name), source: tar::Source::File(lib.file.clone()), executable: false });
    }
    if let Some(m) = model_lib {
        let name = check_model_lib(m, chat.model_lib.as_deref(), dir)?;
        inputs.push(tar::Input { path: format!("lib/{}/{name}.a", Abi::Arm64V8a.name()), source: tar::Source::File(m.archive.clone()), executable: false });
        inputs.push(tar::Input { path: format!("lib/{}/{name}.json", Abi::Arm64V8a.name()), source: tar::Source::File(m.manifest.clone()), executable: false });
    }
    let written = tar::write(out, inputs, options)?;
    let zst = if zstd {
        let z = out.with_file_name(format!("{}.zst", out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
        match tar::compress(out, &z) {
            Ok(w) => Some(w),
            Err(e) => {
                let _ = std::fs::remove_file(out);
                return Err(e.into());
            }
        }
    } else {
        None
    };
    Ok((written, zst))
}

/// Checks the model library against the chat config's `model_lib` (of the
/// parameter directory `dir`) and its objects against arm64-v8a; returns the
/// library name.
fn check_model_lib(m: &ModelLib, named: Option<&str>, dir: &Path) -> Result<String, PackageError> {
    let bad = |file: &Path, why: String| PackageError::ModelLib { file: file.to_path_buf(), why };
    let bytes = std::fs::read(&m.manifest).map_err(io_err(&m.manifest))?;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(&m.manifest, format!("not a JSON manifest: {e}")))?;
    let prefix = manifest.get("system_lib_prefix").and_then(|v| v.as_str()).ok_or_else(|| bad(&m.manifest, "no system_lib_prefix".into()))?;
    if manifest.get("abi").and_then(|v| v.as_str()) != Some(Abi::Arm64V8a.name()) {
        return Err(bad(&m.manifest, format!("abi is {}, the package ships {}", manifest.get("abi").unwrap_or(&serde_json::Value::Null), Abi::Arm64V8a.name())));
    }
    let chat = dir.join(chat_config::FILE);
    let name = match named {
        Some(n) if chat_config::system_lib_prefix(n) == prefix => n.to_string(),
        Some(n) => {
            return Err(bad(
                &m.archive,
                format!("compiled with symbol prefix {prefix:?}, but {} names model_lib {n:?} (prefix {:?})", chat.display(), chat_config::system_lib_prefix(n)),
            ))
        }
        None => return Err(bad(&m.archive, format!("{} names no model_lib", chat.display()))),
    };
    let archive = std::fs::read(&m.archive).map_err(io_err(&m.archive))?;
    let members = crate::package::ar::members(&archive, &m.archive).map_err(|e| bad(&m.archive, e.why))?;
    if members.is_empty() {
        return Err(bad(&m.archive, "holds no object".into()));
    }
    for member in &members {
        let label = PathBuf::from(format!("{}({})", m.archive.display(), member.name));
        elf::check_object(&archive[member.offset..member.offset + member.size], &label, Abi::Arm64V8a)
            .map_err(|source| PackageError::Lib { name: format!("{name}.a"), abi: Abi::Arm64V8a, source })?;
    }
    Ok(name)
}

/// A package opened for reading.
pub struct Package {
    dir: PathBuf,
    _extracted: Option<crate::atomic::Claimed<tempfile::TempDir>>,
    _libs: Option<crate::atomic::Claimed<tempfile::TempDir>>,
    display: String,
    /// The parsed `mlc-chat-config.json`.
    pub chat: ChatConfig,
    /// The verified `tensor-cache.json`.
    pub cache: TensorCache,
    /// Native libraries inside (`lib/<abi>/<name>`), sorted.
    pub libs: Vec<String>,
    /// Where the native libraries were extracted (`<abi>/<name>`), for an archive that has any.
    pub lib_dir: Option<PathBuf>,
    /// The [`BUILD_DEFINITION_FILE`] it carries, as stored.
    pub build_definition: Option<Vec<u8>>,
    tokenizer: Option<Tokenizer>,
}

impl Package {
    /// Opens a package directory or `.tar` (see the module docs for the checks).
    pub fn open(path: &Path) -> Result<Package, PackageError> {
        let display = path.display().to_string();
        let (dir, extracted, libs, lib_dir, keep) = if path.is_dir() {
            (path.to_path_buf(), None, vec![], None, None)
        } else {
            let tmp = crate::atomic::scratch("avac-package").map_err(io_err(path))?;
            let entries = tar::extract(path, tmp.path())?;
            let libs: Vec<String> = entries.iter().filter(|e| e.kind == tar::Kind::File && e.path.starts_with("lib/")).map(|e| e.path.clone()).collect();
            if libs.is_empty() {
                (tmp.path().to_path_buf(), Some(tmp), libs, None, None)
            } else {
                // The parameter files are checked apart from the libraries.
                let lib_dir = tmp.path().join("lib");
                let moved = tmp.path().join(".libs");
                std::fs::rename(&lib_dir, &moved).map_err(io_err(&lib_dir))?;
                let params = crate::atomic::scratch("avac-package").map_err(io_err(path))?;
                for e in std::fs::read_dir(tmp.path()).map_err(io_err(tmp.path()))? {
                    let e = e.map_err(io_err(tmp.path()))?;
                    if e.file_name() != ".libs" {
                        std::fs::rename(e.path(), params.path().join(e.file_name())).map_err(io_err(&e.path()))?;
                    }
                }
                (params.path().to_path_buf(), Some(params), libs, Some(moved), Some(tmp))
            }
        };
        let Checked { chat, tokenizer, .. } = dir_files(&dir, path)?;
        let cache = TensorCache::read(&dir).map_err(|source| PackageError::Cache { path: display.clone(), source })?;
        let definition = dir.join(BUILD_DEFINITION_FILE);
        let build_definition = if definition.is_file() { Some(std::fs::read(&definition).map_err(io_err(&path.join(BUILD_DEFINITION_FILE)))?) } else { None };
        Ok(Package { dir, _extracted: extracted, _libs: keep, display, chat, cache, libs, lib_dir, build_definition, tokenizer })
    }

    /// The directory holding the parameter files (the package itself, or
    /// where its archive was extracted).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tokenizer the package ships (loaded when it was opened).
    pub fn tokenizer(&self) -> Result<&Tokenizer, PackageError> {
        self.tokenizer.as_ref().ok_or_else(|| PackageError::Dir { dir: PathBuf::from(&self.display), why: format!("no {TOKENIZER_JSON}") })
    }

    fn stored(&self, name: &str, dtype: Dtype) -> Result<(Vec<usize>, Vec<u8>), Gemma3Error> {
        let read = |why: String| Gemma3Error::Read { name: name.to_string(), why: format!("{}: {why}", self.display) };
        let (_, rec) = self.cache.find(name).ok_or_else(|| Gemma3Error::MissingTensor { name: format!("{name} (in {})", self.display) })?;
        if rec.dtype != dtype {
            return Err(read(format!("dtype {} where {} is expected", rec.dtype, dtype)));
        }
        let shape = rec.shape.iter().map(|&d| usize::try_from(d).map_err(|_| read("shape overflows".into()))).collect::<Result<Vec<_>, _>>()?;
        let bytes = self.cache.read_tensor(&self.dir, name).map_err(|e| read(e.to_string()))?;
        Ok((shape, bytes))
    }

    /// A quantized weight `{mlc}.q_weight` / `{mlc}.q_scale`, dequantized: `([out, in], values)`.
    fn dequantized(&self, mlc: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        let (ws, wb) = self.stored(&format!("{mlc}.q_weight"), Dtype::U32)?;
        let (ss, sb) = self.stored(&format!("{mlc}.q_scale"), Dtype::BF16)?;
        let read = |why: String| Gemma3Error::Read { name: mlc.to_string(), why: format!("{}: {why}", self.display) };
        let ([out, words], [sout, groups]) = (ws.as_slice(), ss.as_slice()) else {
            return Err(read(format!("q_weight {ws:?} and q_scale {ss:?} must be 2-D")));
        };
        let inp = words * q4::ELEMS_PER_WORD;
        if sout != out || *groups == 0 || inp % groups != 0 {
            return Err(read(format!("q_scale shape {ss:?} does not fit q_weight {ws:?}")));
        }
        let q_weight = wb.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let q_scale = sb.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let t = Q4Tensor::from_parts(q_weight, q_scale, *out, inp, inp / groups).map_err(|e| read(e.to_string()))?;
        Ok((vec![*out, inp], q4::dequantize(&t)))
    }

    /// Group size of the `q4bf16_1` weights (from the embedding's shapes).
    pub fn group_size(&self) -> Result<usize, Gemma3Error> {
        let name = Field::EmbedTokens.model().mlc().expect("the embedding is an MLC parameter");
        let (_, w) = self.cache.find(&format!("{name}.q_weight")).ok_or_else(|| Gemma3Error::MissingTensor { name: format!("{name}.q_weight") })?;
        let (_, s) = self.cache.find(&format!("{name}.q_scale")).ok_or_else(|| Gemma3Error::MissingTensor { name: format!("{name}.q_scale") })?;
        match (w.shape.get(1), s.shape.get(1)) {
            (Some(&words), Some(&groups)) if groups > 0 => Ok((words as usize * q4::ELEMS_PER_WORD) / groups as usize),
            _ => Err(Gemma3Error::Read { name, why: "bad shapes".into() }),
        }
    }
}

impl Gemma3Weights for Package {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        let missing = || Gemma3Error::MissingTensor { name: hf_name.into() };
        let n = Name::from_hf(hf_name).ok_or_else(missing)?;
        let mlc = n.mlc().ok_or_else(missing)?;
        match n.kind() {
            Kind::Norm(_) => {
                let (shape, bytes) = self.stored(&mlc, Dtype::BF16)?;
                // Stored as bfloat16 `1 + w`; the forward adds the 1 back exactly
                // (see the norm rule in `names`), as the GGUF path does.
                let v = bytes.chunks_exact(2).map(|c| names::norm_weight(q4::bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))).collect();
                Ok((shape, v))
            }
            Kind::TiedHead => Err(missing()),
            Kind::Embedding | Kind::Linear { .. } => {
                let (shape, v) = self.dequantized(&mlc)?;
                let group = n.mlc_group();
                if group.len() == 1 {
                    return Ok((shape, v));
                }
                // Rows of a stacked parameter (`gate_up_proj`), each part as
                // many as the config gives it.
                let cfg = &self.chat.model;
                let rows: Vec<usize> = group.iter().map(|p| p.shape(cfg)[0]).collect();
                let cols = shape[1];
                if rows.iter().sum::<usize>() != shape[0] {
                    return Err(Gemma3Error::Read { name: hf_name.into(), why: format!("{}: {mlc} has {} rows, its parts {rows:?}", self.display, shape[0]) });
                }
                let at = group.iter().position(|p| *p == n).expect("a tensor is in its own group");
                let start: usize = rows[..at].iter().sum();
                Ok((vec![rows[at], cols], v[start * cols..(start + rows[at]) * cols].to_vec()))
            }
        }
    }
}
