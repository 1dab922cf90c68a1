//! Labelled intent data: `{"train": [[text, label], …], "test": [[text, label], …]}`
//! (CLINC150's layout; other top-level keys such as CLINC150's `oos_*` and
//! `val` are ignored), and calibration text: a JSON array of strings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Failures reading intent data.
#[derive(Debug, thiserror::Error)]
pub enum IntentsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not JSON.
    #[error("{path}: not JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// JSON of the wrong shape.
    #[error("{path}: {at}: {why} (expected {{\"train\": [[text, label], …], \"test\": [[text, label], …]}})")]
    Shape {
        /// The file.
        path: PathBuf,
        /// Where in the document.
        at: String,
        /// What is wrong.
        why: String,
    },
    /// Calibration text of the wrong shape.
    #[error("{path}: calibration text must be a JSON array of non-empty strings, e.g. [\"set an alarm for 7 am\", \"what's the weather tomorrow\"]: {why}")]
    Calibration {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The data has a different number of classes than declared.
    #[error("{path}: the training split has {found} intent classes but the target declares {declared}")]
    ClassCount {
        /// The file.
        path: PathBuf,
        /// Classes found.
        found: usize,
        /// Classes declared.
        declared: usize,
    },
    /// A test label never appears in training.
    #[error("{path}: test label {label:?} does not occur in the training split")]
    UnknownTestLabel {
        /// The file.
        path: PathBuf,
        /// The label.
        label: String,
    },
}

/// Labelled examples: texts and class ids.
#[derive(Clone, Debug, Default)]
pub struct Split {
    /// Utterances.
    pub texts: Vec<String>,
    /// Class id of each utterance.
    pub labels: Vec<usize>,
}

/// A labelled intent dataset.
#[derive(Clone, Debug)]
pub struct Intents {
    /// Labels sorted, class id = index.
    pub labels: Vec<String>,
    /// Training split.
    pub train: Split,
    /// Test split.
    pub test: Split,
}

fn pairs(path: &Path, v: &serde_json::Value, key: &str) -> Result<Vec<(String, String)>, IntentsError> {
    let shape = |at: String, why: &str| IntentsError::Shape { path: path.into(), at, why: why.into() };
    let arr = v.get(key).ok_or_else(|| shape(key.into(), "missing"))?.as_array().ok_or_else(|| shape(key.into(), "not an array"))?;
    if arr.is_empty() {
        return Err(shape(key.into(), "empty"));
    }
    arr.iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("{key}[{i}]");
            match p.as_array().map(|a| a.as_slice()) {
                Some([serde_json::Value::String(t), serde_json::Value::String(l)]) if !t.trim().is_empty() && !l.is_empty() => Ok((t.clone(), l.clone())),
                _ => Err(shape(at, "not a [text, label] pair of non-empty strings")),
            }
        })
        .collect()
}

impl Intents {
    /// Reads a dataset and checks it has `declared` classes.
    pub fn read(path: &Path, declared: usize) -> Result<Self, IntentsError> {
        let bytes = std::fs::read(path).map_err(|source| IntentsError::Io { path: path.into(), source })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|source| IntentsError::Json { path: path.into(), source })?;
        if !v.is_object() {
            return Err(IntentsError::Shape { path: path.into(), at: "top level".into(), why: "not an object".into() });
        }
        let train = pairs(path, &v, "train")?;
        let test = pairs(path, &v, "test")?;
        let labels: Vec<String> = train.iter().map(|(_, l)| l.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        if labels.len() != declared {
            return Err(IntentsError::ClassCount { path: path.into(), found: labels.len(), declared });
        }
        let id = |l: &str| labels.binary_search_by(|x| x.as_str().cmp(l)).ok();
        let split = |ps: Vec<(String, String)>| -> Result<Split, IntentsError> {
            let mut s = Split::default();
            for (t, l) in ps {
                let c = id(&l).ok_or_else(|| IntentsError::UnknownTestLabel { path: path.into(), label: l.clone() })?;
                s.texts.push(t);
                s.labels.push(c);
            }
            Ok(s)
        };
        Ok(Intents { train: split(train)?, test: split(test)?, labels })
    }
}

/// Reads calibration text (a JSON array of strings).
pub fn read_calibration(path: &Path) -> Result<Vec<String>, IntentsError> {
    let bytes = std::fs::read(path).map_err(|source| IntentsError::Io { path: path.into(), source })?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|source| IntentsError::Json { path: path.into(), source })?;
    let bad = |why: String| IntentsError::Calibration { path: path.into(), why };
    let arr = v.as_array().ok_or_else(|| bad("top level is not an array".into()))?;
    arr.iter()
        .enumerate()
        .map(|(i, s)| match s.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
            _ => Err(bad(format!("element {i} is not a non-empty string"))),
        })
        .collect()
}
