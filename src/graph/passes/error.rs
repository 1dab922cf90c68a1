//! The passes' single error type.

/// Why a pass refused a graph. Every variant names the node (or graph
/// input/output) at fault, so the exporter or the input model can be fixed
/// from the message alone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PassError {
    /// Shape inference met an operator it has no rule for.
    #[error("node {node}: no shape rule for operator {op}")]
    UnknownOp {
        /// The node.
        node: String,
        /// The operator, qualified by its domain when that is not ai.onnx.
        op: String,
    },
    /// A node reads a value that no graph input, initializer or earlier node defines.
    #[error("node {node}: input {value} is not defined before it")]
    UndefinedValue {
        /// The node.
        node: String,
        /// The undefined value.
        value: String,
    },
    /// A value is defined twice (by two nodes, or by a node and an initializer or input).
    #[error("node {node}: output {name} is already defined")]
    DuplicateName {
        /// The node defining it a second time.
        node: String,
        /// The value name.
        name: String,
    },
    /// A required input is absent.
    #[error("node {node}: required input #{index} is missing")]
    MissingInput {
        /// The node.
        node: String,
        /// Position of the input.
        index: usize,
    },
    /// An input that must be known at compile time (shape, axes, slice bounds) is not.
    #[error("node {node}: input {input} must be a constant or a tracked shape value")]
    NotConstant {
        /// The node.
        node: String,
        /// The input value.
        input: String,
    },
    /// An attribute is missing or has a value the operator does not accept.
    #[error("node {node}: attribute {attr}: {reason}")]
    BadAttr {
        /// The node.
        node: String,
        /// The attribute.
        attr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `Cast` to an element type the IR does not represent.
    #[error("node {node}: cast to unsupported ONNX data type {code}")]
    UnsupportedDType {
        /// The node.
        node: String,
        /// The ONNX data type code.
        code: i64,
    },
    /// Inputs of an operator that needs one element type have several.
    #[error("node {node}: element types differ: {a:?} vs {b:?}")]
    DTypeMismatch {
        /// The node.
        node: String,
        /// First type.
        a: crate::graph::DType,
        /// Conflicting type.
        b: crate::graph::DType,
    },
    /// An axis outside the tensor's rank.
    #[error("node {node}: axis {axis} is out of range for rank {rank}")]
    AxisOutOfRange {
        /// The node.
        node: String,
        /// The axis as written.
        axis: i64,
        /// The rank it applies to.
        rank: usize,
    },
    /// Two shapes that the operator needs compatible are not (or cannot be proved to be).
    #[error("node {node}: incompatible shapes {a} and {b}")]
    ShapeMismatch {
        /// The node.
        node: String,
        /// First shape.
        a: String,
        /// Second shape.
        b: String,
    },
    /// A shape the rules cannot determine symbolically.
    #[error("node {node}: cannot infer output shape: {reason}")]
    Unresolvable {
        /// The node.
        node: String,
        /// Which rule gave up and on what.
        reason: String,
    },
    /// A graph input has no declared shape to start inference from.
    #[error("graph input {input} has no declared shape")]
    InputShapeUnknown {
        /// The input.
        input: String,
    },
    /// A graph output is not produced by any node, input or initializer.
    #[error("graph output {output} is never produced")]
    OutputMissing {
        /// The output.
        output: String,
    },
    /// The inferred type of a graph output contradicts its declaration.
    #[error("graph output {output}: declared {declared}, inferred {inferred}")]
    OutputMismatch {
        /// The output.
        output: String,
        /// Declared type and shape.
        declared: String,
        /// Inferred type and shape.
        inferred: String,
    },
}
