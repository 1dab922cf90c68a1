//! A Hugging Face Gemma 3 checkpoint directory as a [`Checkpoint`].
//!
//! # Layout
//!
//! ```text
//! dir/
//!   config.json                   required: model_type "gemma3_text", or "gemma3" with a text_config
//!   generation_config.json        optional: its eos_token_id joins config.json's
//!   model.safetensors             all weights in one file, or
//!   model.safetensors.index.json  { "metadata": { ... }, "weight_map": { <tensor>: <shard file>, ... } }
//!   <shard files>                 the files the index names, next to it
//!   tokenizer.json                required by tokenizer_files()
//!   tokenizer.model               copied when present
//!   tokenizer_config.json         copied when present
//! ```
//!
//! # Rules, and why
//!
//! - **Weights** come from exactly one of `model.safetensors` and the index;
//!   a directory holding both is refused, since which of the two is the model
//!   would be a guess. A directory whose only weights are PyTorch pickles
//!   (`*.bin`, `*.pt`, …) is refused too: unpickling runs arbitrary code, so
//!   they are never executed; convert them to safetensors first.
//! - **The index** is input like any other. Shard names must be plain file
//!   names (no `/`, `\`, `.` or `..`), so an index cannot make the reader open
//!   a file outside the directory; every shard must exist; every tensor it
//!   lists must be in its shard and every tensor of a shard must be listed for
//!   it (save_pretrained writes both together: a disagreement means a mixed or
//!   partial download); and no tensor may be listed twice or sit in two
//!   shards, as which copy is read would then depend on lookup order.
//!   `metadata.total_size` is not checked: transformers does not check it
//!   either, and it has counted tied weights differently across versions.
//! - **Names**: the multimodal `gemma3` checkpoints (4B and up) nest the text
//!   model; its tensors are renamed to the `gemma3_text` names the forward
//!   reads, and the vision tower and projector are skipped. Any other name is
//!   an error, so a checkpoint of another architecture is not half-read:
//!
//!   | stored as                       | read as          |
//!   |---------------------------------|------------------|
//!   | `model.language_model.X` (transformers ≥ 4.50) | `model.X` |
//!   | `language_model.model.X`        | `model.X`        |
//!   | `language_model.lm_head.X`      | `lm_head.X`      |
//!   | `model.X`, `lm_head.X`          | unchanged        |
//!   | `[model.]vision_tower.…`, `[model.]multi_modal_projector.…` | skipped |
//!
//!   Two stored tensors with the same text name are an error. `lm_head.weight`
//!   is kept among the names; the forward ties the head to the embedding.
//! - **Dtypes**: text tensors must be BF16 (what Gemma ships), F16 or F32,
//!   checked at open; they are widened to f32 exactly. Norm weights are HF's
//!   `w` as stored (the model multiplies by `1 + w`), the [`Gemma3Weights`]
//!   convention, so nothing is shifted.
//! - **Special ids**: `bos_token_id`, `eos_token_id` (an integer or a list)
//!   and `pad_token_id` from `config.json`, at its top level or, for
//!   `gemma3`, in its `text_config`. `generation_config.json`'s
//!   `eos_token_id` is added to them (generation stops on any: the union,
//!   sorted); its `bos_token_id` and `pad_token_id` are used only where
//!   `config.json` has none. Every id must lie inside the vocabulary.
//!
//! # Memory
//!
//! Opening reads the JSON files and each shard's header, never tensor data;
//! each header is validated against its file's length, so a truncated shard
//! fails at open. [`Gemma3Weights::tensor`] reads one tensor with a seek and
//! chunked reads ([`SafeTensorsFile`]): peak memory is the largest tensor as
//! f32 plus one [`crate::formats::safetensors::READ_CHUNK`] buffer, whatever
//! the size or number of the shards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::checkpoint::{Checkpoint, CheckpointError, SpecialIds};
use crate::formats::safetensors::{sniff_pickle, Dtype, SafeTensorsFile, SafetensorsError};
use crate::model::gemma3::{Gemma3Config, Gemma3Error, Gemma3Weights};

/// Why a directory is not a Gemma 3 checkpoint this reader takes; each
/// names the file (and tensor) at fault.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// `config.json` is missing.
    #[error("{}: missing: a Hugging Face checkpoint directory needs its config.json", path.display())]
    NoConfig {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A JSON file is unreadable, too large or not JSON.
    #[error("{}: {why}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `config.json` describes a model the forward does not run.
    #[error("{}: {source}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The field at fault (nested fields as `text_config.x`).
        source: Gemma3Error,
    },
    /// A special token id is malformed or outside the vocabulary.
    #[error("{}: field {field}: {why}", path.display())]
    SpecialId {
        /// `config.json` or `generation_config.json`.
        path: PathBuf,
        /// The field (`eos_token_id`, `text_config.bos_token_id`, …).
        field: String,
        /// What is wrong.
        why: String,
    },
    /// Both weight layouts are present.
    #[error("{}: holds both {SINGLE} and {INDEX}; keep one so the weights are not a guess", dir.display())]
    BothLayouts {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// Neither weight layout is present.
    #[error("{}: no {SINGLE} or {INDEX}", dir.display())]
    NoWeights {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// The directory cannot be listed.
    #[error("{}: {source}", dir.display())]
    Dir {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The weights are a PyTorch pickle (never unpickled).
    #[error(
        "{}: PyTorch pickle checkpoints are never executed (unpickling runs arbitrary code); convert it to safetensors first, \
         e.g. with transformers' save_pretrained(dir, safe_serialization=True)",
        path.display()
    )]
    Pickle {
        /// The file.
        path: PathBuf,
    },
    /// A safetensors file cannot be opened.
    #[error("{}: {source}{hint}", path.display())]
    Shard {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        source: SafetensorsError,
        /// What it most likely means, when that is known.
        hint: &'static str,
    },
    /// The shard index disagrees with itself or with the shards.
    #[error("{}: {tensor}: {why}", index.display())]
    Index {
        /// `model.safetensors.index.json`.
        index: PathBuf,
        /// The tensor (or the index itself) at fault.
        tensor: String,
        /// What is wrong.
        why: String,
    },
    /// A stored tensor is neither a Gemma 3 text tensor nor a vision one.
    #[error("{}: {tensor}: is not a Gemma 3 tensor (expected model.*, lm_head.*, a language_model.* text tensor or a vision tensor)", shard.display())]
    NotGemma3 {
        /// The shard.
        shard: PathBuf,
        /// The stored name.
        tensor: String,
    },
    /// A tensor's header entry cannot be read.
    #[error("{}: {tensor}: {source}", shard.display())]
    TensorInfo {
        /// The shard.
        shard: PathBuf,
        /// The stored name.
        tensor: String,
        /// The reader's error.
        source: SafetensorsError,
    },
    /// A text tensor has a dtype the forward does not widen.
    #[error("{}: {tensor}: is {dtype}{}; Gemma 3 weights must be BF16, F16 or F32", shard.display(), if stored == tensor { String::new() } else { format!(" (stored as '{stored}')") })]
    Dtype {
        /// The shard.
        shard: PathBuf,
        /// The text name.
        tensor: String,
        /// The stored name.
        stored: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// Two stored tensors read as the same text tensor.
    #[error("{}: {tensor}: both '{first}' ({first_shard}) and '{second}' read as it", shard.display())]
    DuplicateName {
        /// The shard of the second.
        shard: PathBuf,
        /// The text name.
        tensor: String,
        /// The first stored name.
        first: String,
        /// The shard holding the first.
        first_shard: String,
        /// The second stored name.
        second: String,
    },
    /// A tokenizer file is unreadable, too large or not JSON.
    #[error("{}: {why}", path.display())]
    TokenizerFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The directory has no `tokenizer.json`.
    #[error("{}: no tokenizer.json; the runtime needs the Hugging Face tokenizer beside the weights", dir.display())]
    NoTokenizer {
        /// The checkpoint directory.
        dir: PathBuf,
    },
}

#[cfg(test)]
mod tests;

/// The single-file weights.
const SINGLE: &str = "model.safetensors";
/// The index of sharded weights.
const INDEX: &str = "model.safetensors.index.json";
/// Largest `config.json`, `generation_config.json` or index accepted.
const MAX_JSON_LEN: u64 = 64 << 20;
/// Largest tokenizer file accepted (Gemma 3's `tokenizer.json` is 33 MB).
const MAX_TOKENIZER_LEN: u64 = 512 << 20;
/// Tokenizer files copied: (name, required).
const TOKENIZER_FILES: [(&str, bool); 3] = [("tokenizer.json", true), ("tokenizer.model", false), ("tokenizer_config.json", false)];
/// File name endings of PyTorch pickle checkpoints.
const PICKLE_ENDINGS: [&str; 5] = [".bin", ".pt", ".pth", ".ckpt", ".pkl"];

/// A Hugging Face Gemma 3 checkpoint directory, its tensors left on disk.
#[derive(Debug)]
pub struct HfCheckpoint {
    dir: PathBuf,
    display: String,
    cfg: Gemma3Config,
    ids: SpecialIds,
    shards: Vec<SafeTensorsFile>,
    /// Text name → (index in `shards`, name stored in that shard).
    names: BTreeMap<String, (usize, String)>,
}

impl HfCheckpoint {
    /// Reads the config, the special ids and every shard's header of `dir`,
    /// checking them as the module docs describe.
    pub fn open(dir: &Path) -> Result<HfCheckpoint, HfError> {
        let config_path = dir.join("config.json");
        let config = read_json(&config_path)?.ok_or_else(|| HfError::NoConfig { path: config_path.clone() })?;
        let multimodal = config.get("model_type").and_then(Value::as_str) == Some("gemma3");
        let cfg = Gemma3Config::from_value(&config).map_err(|e| {
            let source = match e {
                Gemma3Error::Config { field, why } => {
                    let nested = multimodal && !field.starts_with("text_config") && field != "model_type";
                    Gemma3Error::Config { field: if nested { format!("text_config.{field}") } else { field }, why }
                }
                other => other,
            };
            HfError::Config { path: config_path.clone(), source }
        })?;
        let generation_path = dir.join("generation_config.json");
        let generation = read_json(&generation_path)?;
        let ids = special_ids(&cfg, (&config_path, &config), generation.as_ref().map(|g| (generation_path.as_path(), g)))?;
        let shards = open_shards(dir)?;
        let names = text_names(&shards)?;
        Ok(HfCheckpoint { dir: dir.to_path_buf(), display: dir.display().to_string(), cfg, ids, shards, names })
    }
}

impl Gemma3Weights for HfCheckpoint {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        let (shard, stored) = self.names.get(hf_name).ok_or_else(|| Gemma3Error::MissingTensor { name: hf_name.into() })?;
        self.shards[*shard].read_f32(stored).map_err(|e| Gemma3Error::Read { name: hf_name.into(), why: e.to_string() })
    }
}

impl Checkpoint for HfCheckpoint {
    fn display(&self) -> &str {
        &self.display
    }

    fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    fn tensor_names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn tokenizer_files(&self) -> Result<Vec<(String, Vec<u8>)>, CheckpointError> {
        let mut out = Vec::new();
        for (name, required) in TOKENIZER_FILES {
            let path = self.dir.join(name);
            let err = |why: String| HfError::TokenizerFile { path: path.clone(), why };
            match read_capped(&path, MAX_TOKENIZER_LEN).map_err(|e| err(e.to_string()))? {
                Some(bytes) => {
                    if name.ends_with(".json") {
                        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|e| err(format!("not valid JSON: {e}")))?;
                    }
                    out.push((name.to_string(), bytes));
                }
                None if required => return Err(HfError::NoTokenizer { dir: self.dir.clone() }.into()),
                None => {}
            }
        }
        out.sort();
        Ok(out)
    }

    fn special_ids(&self) -> SpecialIds {
        self.ids.clone()
    }
}

/// A file's bytes, `None` if it does not exist, an error if it is larger than `cap`.
fn read_capped(path: &Path, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than the {cap}-byte limit")));
    }
    Ok(Some(bytes))
}

/// A JSON file's value, `None` if it does not exist.
fn read_json(path: &Path) -> Result<Option<Value>, HfError> {
    let bad = |why: String| HfError::Json { path: path.to_path_buf(), why };
    match read_capped(path, MAX_JSON_LEN).map_err(|e| bad(e.to_string()))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| bad(e.to_string())),
    }
}

/// BOS, EOS and padding ids; `config` and `generation` are (path, value).
fn special_ids(cfg: &Gemma3Config, config: (&Path, &Value), generation: Option<(&Path, &Value)>) -> Result<SpecialIds, HfError> {
    let mut ids = SpecialIds::default();
    let mut eos = BTreeSet::new();
    for (path, v) in std::iter::once(config).chain(generation) {
        for (name, field) in [("bos_token_id", &mut ids.bos), ("pad_token_id", &mut ids.pad)] {
            if let Some(found) = token_ids(cfg, path, v, name)? {
                if found.len() != 1 {
                    return Err(HfError::SpecialId { path: path.to_path_buf(), field: name.into(), why: format!("expected one id, found {}", found.len()) });
                }
                field.get_or_insert(found[0]);
            }
        }
        eos.extend(token_ids(cfg, path, v, "eos_token_id")?.unwrap_or_default());
    }
    ids.eos = eos.into_iter().collect();
    Ok(ids)
}

/// The ids of field `name` at the top level of `v` or in its `text_config`:
/// an integer or a list of integers, each inside the vocabulary.
fn token_ids(cfg: &Gemma3Config, path: &Path, v: &Value, name: &str) -> Result<Option<Vec<u32>>, HfError> {
    let present = |o: &Value| o.get(name).filter(|x| !x.is_null()).cloned();
    let (field, value) = match (present(v), v.get("text_config").and_then(present)) {
        (Some(x), _) => (name.to_string(), x),
        (None, Some(x)) => (format!("text_config.{name}"), x),
        (None, None) => return Ok(None),
    };
    let bad = |why: String| HfError::SpecialId { path: path.to_path_buf(), field: field.clone(), why };
    let items = match &value {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let mut out = Vec::with_capacity(items.len());
    for x in items {
        let id = x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad(format!("expected a token id or a list of them, found {value}")))?;
        if id as usize >= cfg.vocab_size {
            return Err(bad(format!("id {id} is outside the vocabulary of {}", cfg.vocab_size)));
        }
        out.push(id);
    }
    Ok(Some(out))
}

/// Opens `model.safetensors`, or the shards of the index after checking it
/// against them.
fn open_shards(dir: &Path) -> Result<Vec<SafeTensorsFile>, HfError> {
    let (single, index) = (dir.join(SINGLE), dir.join(INDEX));
    match (single.exists(), index.exists()) {
        (true, true) => Err(HfError::BothLayouts { dir: dir.to_path_buf() }),
        (true, false) => Ok(vec![open_shard(&single)?]),
        (false, true) => open_indexed(dir, &index),
        (false, false) => {
            let mut pickles: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|source| HfError::Dir { dir: dir.to_path_buf(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| PICKLE_ENDINGS.iter().any(|end| n.ends_with(end))))
                .collect();
            pickles.sort();
            match pickles.first() {
                Some(p) => Err(HfError::Pickle { path: p.clone() }),
                None => Err(HfError::NoWeights { dir: dir.to_path_buf() }),
            }
        }
    }
}

/// Opens one safetensors file, naming a pickle in disguise as such.
fn open_shard(path: &Path) -> Result<SafeTensorsFile, HfError> {
    SafeTensorsFile::open(path).map_err(|e| {
        // Only a file whose very header makes no sense can be a pickle: a
        // valid header length may also start with the pickle byte 0x80.
        let unreadable_header = matches!(
            e,
            SafetensorsError::TooShort { .. }
                | SafetensorsError::HeaderTooLarge { .. }
                | SafetensorsError::HeaderBeyondFile { .. }
                | SafetensorsError::HeaderNotUtf8 { .. }
                | SafetensorsError::HeaderStart { .. }
        );
        let mut head = [0u8; 4];
        let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
        if unreadable_header && sniff_pickle(&head[..n]) {
            HfError::Pickle { path: path.to_path_buf() }
        } else {
            let hint =
                if matches!(e, SafetensorsError::OffsetsOutOfBounds { .. }) { " (the file is shorter than its header says: truncated download?)" } else { "" };
            HfError::Shard { path: path.to_path_buf(), source: e, hint }
        }
    })
}

/// A JSON object's entries in file order, repeated keys kept (a map would
/// silently keep one of them).
struct Entries<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(e) = map.next_entry()? {
                    entries.push(e);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

/// `model.safetensors.index.json`; other keys (`metadata`) are not used.
#[derive(Deserialize)]
struct RawIndex {
    weight_map: Entries<String>,
}

/// Whether `name` can only name a file directly inside the directory.
fn plain_file_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None)) && !name.contains(['/', '\\', '\0'])
}

fn open_indexed(dir: &Path, index: &Path) -> Result<Vec<SafeTensorsFile>, HfError> {
    let err = |tensor: &str, why: String| HfError::Index { index: index.to_path_buf(), tensor: tensor.to_string(), why };
    let bytes = read_capped(index, MAX_JSON_LEN).map_err(|e| err(INDEX, e.to_string()))?.unwrap_or_default();
    let raw: RawIndex = serde_json::from_slice(&bytes).map_err(|e| err(INDEX, format!("not a safetensors index: {e}")))?;
    if raw.weight_map.0.is_empty() {
        return Err(err(INDEX, "weight_map lists no tensors".into()));
    }
    // Shard file → the tensors listed for it, and tensor → its shard.
    let mut by_shard: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for (tensor, shard) in raw.weight_map.0 {
        if !plain_file_name(&shard) {
            return Err(err(&tensor, format!("shard {shard:?} is not a plain file name in the checkpoint directory")));
        }
        if let Some(first) = listed.get(&tensor) {
            return Err(err(&tensor, format!("listed twice in weight_map (shards {first} and {shard})")));
        }
        listed.insert(tensor.clone(), shard.clone());
        by_shard.entry(shard).or_default().insert(tensor);
    }
    let mut shards = Vec::with_capacity(by_shard.len());
    for (shard, tensors) in &by_shard {
        let path = dir.join(shard);
        if !path.is_file() {
            let first = tensors.first().map(String::as_str).unwrap_or_default();
            return Err(err(first, format!("maps it to {shard}, which is not in {}", dir.display())));
        }
        let file = open_shard(&path)?;
        if let Some(t) = tensors.iter().find(|t| !file.contains(t)) {
            return Err(err(t, format!("maps it to {shard}, which does not hold it")));
        }
        for t in file.names() {
            if !tensors.contains(t) {
                let why = match listed.get(t) {
                    Some(other) => format!("is in both {shard} and {other}"),
                    None => format!("is in {shard} but weight_map does not list it"),
                };
                return Err(err(t, why));
            }
        }
        shards.push(file);
    }
    Ok(shards)
}

/// What a stored tensor name is to the text model.
#[derive(Debug, PartialEq)]
enum Role {
    /// Read under this `gemma3_text` name.
    Text(String),
    /// Vision tower or projector: not part of the text model.
    Vision,
    /// Not a Gemma 3 tensor.
    Unknown,
}

/// The renaming table of the module docs.
fn role(stored: &str) -> Role {
    const RENAMES: [(&str, &str); 3] = [("model.language_model.", "model."), ("language_model.model.", "model."), ("language_model.lm_head.", "lm_head.")];
    const VISION: [&str; 4] = ["model.vision_tower.", "model.multi_modal_projector.", "vision_tower.", "multi_modal_projector."];
    if let Some((from, to)) = RENAMES.iter().find(|(from, _)| stored.starts_with(from)) {
        return Role::Text(format!("{to}{}", &stored[from.len()..]));
    }
    if VISION.iter().any(|p| stored.starts_with(p)) {
        return Role::Vision;
    }
    if stored.starts_with("model.") || stored.starts_with("lm_head.") {
        return Role::Text(stored.to_string());
    }
    Role::Unknown
}

/// Text name → (shard, stored name) for every text tensor, checking names and dtypes.
fn text_names(shards: &[SafeTensorsFile]) -> Result<BTreeMap<String, (usize, String)>, HfError> {
    let mut names: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let shard_path = || shard.path().to_path_buf();
        for stored in shard.names() {
            let text = match role(stored) {
                Role::Text(t) => t,
                Role::Vision => continue,
                Role::Unknown => return Err(HfError::NotGemma3 { shard: shard_path(), tensor: stored.to_string() }),
            };
            let (dtype, _) = shard.info(stored).map_err(|source| HfError::TensorInfo { shard: shard_path(), tensor: stored.to_string(), source })?;
            if !matches!(dtype, Dtype::BF16 | Dtype::F16 | Dtype::F32) {
                return Err(HfError::Dtype { shard: shard_path(), tensor: text, stored: stored.to_string(), dtype });
            }
            if let Some((j, other)) = names.get(&text) {
                let (first, first_shard) = (other.clone(), shards[*j].display_name().to_string());
                return Err(HfError::DuplicateName { shard: shard_path(), tensor: text, first, first_shard, second: stored.to_string() });
            }
            names.insert(text, (i, stored.to_string()));
        }
    }
    Ok(names)
}
