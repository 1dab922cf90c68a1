//! What a target's fields must agree on, checked when the declaration
//! loads: every engine plans from a checked declaration, so none of them
//! re-decides these rules or finds a broken target only when a step runs.

use super::{AlcTarget, AonTarget, Target};

/// Ways a target's fields disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `quantize` is declared but there is nothing to calibrate on.
    #[error("INT8 quantization (`quantize`) needs a `calibration` source in the target")]
    QuantizeWithoutCalibration,
    /// `artifact` is not a plain file name.
    #[error("artifact {name:?} must be a plain file name (no `/`, not empty, `.` or `..`)")]
    ArtifactName {
        /// The declared name.
        name: String,
    },
    /// An ALC target names no checkpoint.
    #[error("model lists no source")]
    NoModel,
    /// A native library's ABI is unknown.
    #[error("library {name:?}: {why}")]
    LibAbi {
        /// The library's file name.
        name: String,
        /// The ABI parser's message.
        why: String,
    },
    /// A native library's name is not a plain `.so` file name.
    #[error("library name {name:?} must be a plain file name ending in .so")]
    LibName {
        /// The declared name.
        name: String,
    },
}

/// Checks one target.
pub fn target(t: &Target) -> Result<(), TargetError> {
    let a = t.artifact();
    if a.is_empty() || a == "." || a == ".." || a.contains('/') || a.contains('\\') || a.contains('\0') {
        return Err(TargetError::ArtifactName { name: a.into() });
    }
    match t {
        Target::Aon(t) => aon(t),
        Target::Alc(t) => alc(t),
    }
}

fn aon(t: &AonTarget) -> Result<(), TargetError> {
    if t.quantize.is_some() && t.calibration.is_none() {
        return Err(TargetError::QuantizeWithoutCalibration);
    }
    Ok(())
}

fn alc(t: &AlcTarget) -> Result<(), TargetError> {
    if t.model.is_empty() {
        return Err(TargetError::NoModel);
    }
    for lib in &t.package.libs {
        lib.abi.parse::<crate::package::elf::Abi>().map_err(|e| TargetError::LibAbi { name: lib.name.clone(), why: e.to_string() })?;
        if lib.name.contains('/') || !lib.name.ends_with(".so") {
            return Err(TargetError::LibName { name: lib.name.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::declaration::{DeclError, Loaded};
    use std::path::Path;

    const BASE: &str = r#"
[sources.m]
kind = "file"
path = "m.bin"
[sources.i]
kind = "file"
path = "i.json"
[targets.t]
rule = "aon"
description = "d"
model = ["m"]
intents = "i"
artifact = "m.onnx"
convert = { classes = 2, pooling = "mean-normalized" }
"#;

    fn refused(text: &str) -> String {
        match Loaded::parse(text, Path::new("t.toml"), None) {
            Err(e @ DeclError::Inconsistent { .. }) => e.to_string(),
            other => panic!("expected Inconsistent, got {other:?}"),
        }
    }

    #[test]
    fn inconsistent_targets_are_refused_at_load_naming_file_and_target() {
        assert!(Loaded::parse(BASE, Path::new("t.toml"), None).is_ok());
        let msg = refused(&format!("{BASE}quantize = {{ mode = \"static\" }}\n"));
        assert!(msg.starts_with("t.toml: target t: ") && msg.contains("needs a `calibration` source"), "{msg}");
        for bad in ["", ".", "..", "../../escaped.onnx", "/abs/m.onnx", "a/b.onnx"] {
            let msg = refused(&BASE.replace("artifact = \"m.onnx\"", &format!("artifact = {bad:?}")));
            assert!(msg.contains("must be a plain file name"), "{bad:?}: {msg}");
        }
    }
}
