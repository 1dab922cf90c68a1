//! What a target's fields must agree on, checked when the declaration
//! loads: every engine plans from a checked declaration, so none of them
//! re-decides these rules or finds a broken target only when a step runs.

use super::{AlcTarget, AonTarget, Target};

/// Ways a target's fields disagree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    /// `quantize` is declared but there is nothing to calibrate on.
    #[error("INT8 quantization (`quantize`) needs a `calibration` source in the target")]
    QuantizeWithoutCalibration,
    /// `artifact` is not a plain file name.
    #[error("artifact {name:?} must be a plain file name: 1 to 200 of A-Z a-z 0-9 . _ + - @, not starting with `.` or `-` (so no `/`, `..` or absolute path)")]
    ArtifactName {
        /// The declared name.
        name: String,
    },
    /// A validation gate is not a number in its range (NaN, infinite, a
    /// fraction outside 0..=1, a negative tolerance).
    #[error("validate.{field} = {value} must be {range}")]
    Gate {
        /// The gate's path in the target table (`int8.min_agreement`).
        field: &'static str,
        /// The declared value.
        value: f64,
        /// What it must be.
        range: &'static str,
    },
    /// GPTQ is declared but there is nothing to calibrate on.
    #[error("calibrated 4-bit quantization (`quantize.gptq`) needs a `calibration` source in the target")]
    GptqWithoutCalibration,
    /// A calibration text is declared but nothing reads it.
    #[error("`calibration` is declared but `quantize` has no `gptq` table to use it")]
    CalibrationUnused,
    /// The calibration text is the evaluation text.
    #[error("`calibration` and `text` are the same source {source_name:?}: never calibrate on the evaluation text")]
    CalibrationIsEvaluation {
        /// The source.
        source_name: String,
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
    /// A target compiling the Android model library is not named `…-android.tar`.
    #[error("artifact {name:?}: a package with the Android model library (`compile`) is named `…-android.tar`")]
    AndroidName {
        /// The declared name.
        name: String,
    },
    /// `compile.wheels` is empty, or `compile.python` is not a file name or absolute path.
    #[error("compile.{field}: {why}")]
    Compile {
        /// The field.
        field: &'static str,
        /// What is wrong.
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
    if !plain_file_name(a) {
        return Err(TargetError::ArtifactName { name: a.into() });
    }
    match t {
        Target::Aon(t) => aon(t),
        Target::Alc(t) => alc(t),
    }
}

/// One path component from a safe character set: an artifact's name (and
/// the report names derived from it) can be joined to any output
/// directory, whoever wrote the declaration or build definition.
pub fn plain_file_name(s: &str) -> bool {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-' | '@');
    (1..=200).contains(&s.len()) && s.chars().all(safe) && !s.starts_with('.') && !s.starts_with('-')
}

/// What a gate's value must be.
#[derive(Clone, Copy)]
enum Range {
    /// A fraction: agreement, accuracy.
    Fraction,
    /// A tolerance: an absolute difference, a divergence.
    NonNegative,
    /// A ratio of two positive figures.
    Positive,
}

fn gate(field: &'static str, value: f64, range: Range) -> Result<(), TargetError> {
    let (ok, text) = match range {
        Range::Fraction => ((0.0..=1.0).contains(&value), "a fraction from 0 to 1"),
        Range::NonNegative => (value.is_finite() && value >= 0.0, "a finite number ≥ 0"),
        Range::Positive => (value.is_finite() && value > 0.0, "a finite number > 0"),
    };
    if ok {
        Ok(())
    } else {
        Err(TargetError::Gate { field, value, range: text })
    }
}

fn aon(t: &AonTarget) -> Result<(), TargetError> {
    if t.quantize.is_some() && t.calibration.is_none() {
        return Err(TargetError::QuantizeWithoutCalibration);
    }
    let (v, i) = (&t.validate, &t.validate.int8);
    gate("max_abs_logit_diff", v.max_abs_logit_diff.into(), Range::NonNegative)?;
    gate("min_agreement", v.min_agreement.into(), Range::Fraction)?;
    gate("min_accuracy", v.min_accuracy.into(), Range::Fraction)?;
    gate("int8.min_agreement", i.min_agreement.into(), Range::Fraction)?;
    gate("int8.max_accuracy_drop", i.max_accuracy_drop.into(), Range::Fraction)?;
    gate("int8.max_size_ratio", i.max_size_ratio.into(), Range::Positive)?;
    gate("int8.min_simulation_agreement", i.min_simulation_agreement.into(), Range::Fraction)
}

fn alc(t: &AlcTarget) -> Result<(), TargetError> {
    if t.model.is_empty() {
        return Err(TargetError::NoModel);
    }
    match (&t.quantize.gptq, &t.calibration) {
        (Some(_), None) => return Err(TargetError::GptqWithoutCalibration),
        (None, Some(_)) => return Err(TargetError::CalibrationUnused),
        (Some(_), Some(c)) if *c == t.text => return Err(TargetError::CalibrationIsEvaluation { source_name: c.clone() }),
        _ => {}
    }
    let v = &t.validate;
    gate("max_ppl_ratio", v.max_ppl_ratio, Range::Positive)?;
    gate("min_top1_agreement", v.min_top1_agreement, Range::Fraction)?;
    if let Some(kl) = v.max_mean_kl {
        gate("max_mean_kl", kl, Range::NonNegative)?;
    }
    if let Some(c) = &t.compile {
        if !t.artifact.ends_with("-android.tar") {
            return Err(TargetError::AndroidName { name: t.artifact.clone() });
        }
        if c.wheels.is_empty() {
            return Err(TargetError::Compile { field: "wheels", why: "lists no wheel of toolchains/tvm/requirements.txt".into() });
        }
        let p = &c.python;
        let ok = if let Some(rest) = p.strip_prefix('/') { !rest.is_empty() && !p.split('/').any(|c| c == "..") } else { plain_file_name(p) };
        if !ok {
            return Err(TargetError::Compile { field: "python", why: format!("{p:?} must be an absolute path or a plain file name") });
        }
    }
    for lib in &t.package.libs {
        lib.abi.parse::<crate::package::elf::Abi>().map_err(|e| TargetError::LibAbi { name: lib.name.clone(), why: e.to_string() })?;
        if !plain_file_name(&lib.name) || !lib.name.ends_with(".so") {
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
        for (gate, bad) in [("min_agreement", "-5.0"), ("max_abs_logit_diff", "nan"), ("max_abs_logit_diff", "inf"), ("min_accuracy", "1.5")] {
            let msg = refused(&format!("{BASE}validate = {{ {gate} = {bad} }}\n"));
            assert!(msg.contains(&format!("validate.{gate} = ")) && msg.contains("must be"), "{gate} = {bad}: {msg}");
        }
        let msg = refused(&format!("{BASE}validate = {{ int8 = {{ min_agreement = 2.0 }} }}\n"));
        assert!(msg.contains("validate.int8.min_agreement = 2 must be a fraction"), "{msg}");
        for bad in ["", ".", "..", "../../escaped.onnx", "/abs/m.onnx", "a/b.onnx", "a\\b.onnx", ".hidden.onnx", "-rf.onnx", "m\n.onnx", "ü.onnx"] {
            let msg = refused(&BASE.replace("artifact = \"m.onnx\"", &format!("artifact = {bad:?}")));
            assert!(msg.contains("must be a plain file name"), "{bad:?}: {msg}");
        }
    }
}
