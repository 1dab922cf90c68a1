//! Named f32 tensors as the forwards consume them, independent of the file
//! format that holds them.

use std::collections::BTreeMap;

/// Failures assembling a model from its tensors.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor the architecture needs is absent.
    #[error("{file}: missing tensor {name}")]
    Missing {
        /// The weights file.
        file: String,
        /// The tensor name (without optional prefixes).
        name: String,
    },
    /// A tensor has the wrong shape.
    #[error("{file}: tensor {name} has shape {got:?}, expected {want:?}")]
    Shape {
        /// The weights file.
        file: String,
        /// The tensor.
        name: String,
        /// Shape found.
        got: Vec<usize>,
        /// Shape the config implies.
        want: Vec<usize>,
    },
    /// The tensor could not be read as f32.
    #[error("{file}: tensor {name}: {why}")]
    Read {
        /// The weights file.
        file: String,
        /// The tensor.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// A token id is outside the embedding table.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A sequence is longer than the position table.
    #[error("sequence of {len} tokens exceeds the model's {max} positions")]
    TooLong {
        /// The sequence length.
        len: usize,
        /// Positions available.
        max: usize,
    },
}

/// A set of named f32 tensors.
pub trait Weights {
    /// Display name of the file(s) behind these weights, for errors.
    fn file(&self) -> &str;
    /// Whether `name` exists.
    fn has(&self, name: &str) -> bool;
    /// Shape and values of `name`, converted to f32.
    fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError>;

    /// `get` checked against an expected shape; tries each prefix in turn.
    fn expect(&self, prefixes: &[&str], name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let full = prefixes
            .iter()
            .map(|p| format!("{p}{name}"))
            .find(|n| self.has(n))
            .ok_or_else(|| ModelError::Missing { file: self.file().into(), name: name.into() })?;
        let (got, v) = self.get(&full)?;
        if got != shape {
            return Err(ModelError::Shape { file: self.file().into(), name: full, got, want: shape.to_vec() });
        }
        Ok(v)
    }
}

/// In-memory weights (tests, generated checkpoints, converted models).
#[derive(Clone, Debug, Default)]
pub struct MemWeights {
    /// Display name.
    pub file: String,
    /// Tensors by name.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights for MemWeights {
    fn file(&self) -> &str {
        &self.file
    }
    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
    fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        self.tensors.get(name).cloned().ok_or_else(|| ModelError::Missing { file: self.file.clone(), name: name.into() })
    }
}

impl Weights for crate::formats::safetensors::SafeTensors {
    fn file(&self) -> &str {
        self.display_name()
    }
    fn has(&self, name: &str) -> bool {
        self.get(name).is_ok()
    }
    fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let view = crate::formats::safetensors::SafeTensors::get(self, name).map_err(|e| ModelError::Read {
            file: self.display_name().into(),
            name: name.into(),
            why: e.to_string(),
        })?;
        let v = view.to_f32_vec().map_err(|e| ModelError::Read { file: self.display_name().into(), name: name.into(), why: e.to_string() })?;
        Ok((view.shape.to_vec(), v))
    }
}
