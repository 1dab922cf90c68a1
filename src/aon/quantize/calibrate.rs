//! Calibration over the graph: the FP32 model runs in the reference
//! evaluator ([`crate::graph::eval`]) on each calibration token sequence, at
//! its own length, and hands its activations to the steps that need them:
//! the observers of [`crate::quant::observers`] (activation ranges), and
//! per-channel statistics for smoothing and bias correction.

use super::QuantizeError;
use crate::graph::eval::{Evaluator, Value};
use crate::graph::Model;
use crate::quant::int8::Range;
use crate::quant::observers::{Method, Observer};
use std::collections::{BTreeMap, BTreeSet};

/// The evaluator inputs of one calibration sequence (unpadded, all positions attended).
pub(super) fn calibration_inputs(seq: &[u32]) -> [(&'static str, Value); 2] {
    let len = seq.len();
    [("input_ids", Value::i64(&[1, len], seq.iter().map(|&v| v as i64).collect())), ("attention_mask", Value::i64(&[1, len], vec![1; len]))]
}

/// Runs `m` on every calibration sequence and hands `row` each last-axis
/// row (one token's channels) of every float activation named in `acts`.
pub(super) fn for_each_channel_row(m: &Model, acts: &[&str], calibration: &[Vec<u32>], row: &mut dyn FnMut(&str, &[f32])) -> Result<(), QuantizeError> {
    let ev = Evaluator::new(m)?;
    for seq in calibration {
        ev.run(&calibration_inputs(seq), &mut |name, v| {
            let (true, Some(a)) = (acts.contains(&name), v.as_f32()) else { return };
            let k = *a.dims.last().unwrap_or(&0);
            if k > 0 {
                for r in a.data.chunks_exact(k) {
                    row(name, r);
                }
            }
        })?;
    }
    Ok(())
}

/// Calibrated ranges of `acts` over the calibration sequences.
pub(super) fn ranges(fp32: &Model, acts: &BTreeSet<&str>, calibration: &[Vec<u32>], method: &Method) -> Result<BTreeMap<String, Range>, QuantizeError> {
    let ev = Evaluator::new(fp32)?;
    let mut observers: BTreeMap<String, Observer> = acts.iter().map(|a| (a.to_string(), Observer::new(a.to_string()))).collect();
    let passes = if method.needs_histogram() { 2 } else { 1 };
    for pass in 0..passes {
        if pass == 1 {
            for o in observers.values_mut() {
                o.start_histogram_pass()?;
            }
        }
        for seq in calibration {
            let mut err = None;
            ev.run(&calibration_inputs(seq), &mut |name, v| {
                if let (Some(o), Some(a)) = (observers.get_mut(name), v.as_f32()) {
                    if err.is_none() {
                        if let Err(e) = o.observe(&a.data) {
                            err = Some(e);
                        }
                    }
                }
            })?;
            if let Some(e) = err {
                return Err(e.into());
            }
        }
    }
    let mut ranges = BTreeMap::new();
    for (a, o) in &observers {
        ranges.insert(a.clone(), o.range(method)?);
    }
    Ok(ranges)
}
