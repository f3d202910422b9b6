//! The opaque handle behind `lre_optimizer_t`: an optimizer of either dtype.

use crate::CpuOptimizer;
use crate::elem::Dtype;
use crate::error::{Error, Result};

/// An LRE optimizer (C: `lre_optimizer_t`). Create with `lre_optimizer_new`, destroy with
/// `lre_optimizer_free`. One handle must not be used by two threads at the same time.
pub struct LreOptimizer {
    pub(crate) inner: Handle,
}

/// The optimizer, by dtype.
pub(crate) enum Handle {
    F32(CpuOptimizer<f32>),
    F64(CpuOptimizer<f64>),
}

/// Runs the same expression on whichever optimizer the handle holds.
macro_rules! with_optimizer {
    ($handle:expr, $opt:ident => $body:expr) => {
        match $handle {
            $crate::ffi::handle::Handle::F32($opt) => $body,
            $crate::ffi::handle::Handle::F64($opt) => $body,
        }
    };
}
pub(crate) use with_optimizer;

impl Handle {
    /// The f32 optimizer, or an error naming the right entry point.
    pub fn f32(&mut self, function: &str) -> Result<&mut CpuOptimizer<f32>> {
        match self {
            Handle::F32(o) => Ok(o),
            Handle::F64(_) => Err(wrong_dtype(function, Dtype::F64)),
        }
    }

    /// The f64 optimizer, or an error naming the right entry point.
    pub fn f64(&mut self, function: &str) -> Result<&mut CpuOptimizer<f64>> {
        match self {
            Handle::F64(o) => Ok(o),
            Handle::F32(_) => Err(wrong_dtype(function, Dtype::F32)),
        }
    }
}

fn wrong_dtype(function: &str, actual: Dtype) -> Error {
    Error::invalid(format!(
        "{function} called on an optimizer with dtype={actual}; call the _{actual} variant (or create the \
         optimizer with dtype={})",
        if actual == Dtype::F32 { "f64" } else { "f32" }
    ))
}
