//! `warmup=N`: the first N steps (init steps included) are plain diagonal Adam on the whole
//! gradient, x ← x − lr·Adam(g), while the curvature and basis are built as usual; the low-rank
//! step starts at step N. As `start_preconditioning_step` in Shampoo: early windows hold few
//! directions, and the low-rank step ignores the rest of the gradient.

use super::diagonal_adam::{DiagonalAdam, Work};
use crate::backend::Backend;

/// Whether step `t` (counted from 0) is a warm-up step.
pub(super) fn active(t: u64, warmup: u64) -> bool {
    t < warmup
}

/// Writes Adam(g) to `work.step` (the caller adds −lr times it).
pub(super) fn step<B: Backend>(
    be: &B,
    grad: &B::Vector,
    adam: &mut DiagonalAdam,
    work: &mut Work<B>,
) {
    be.download(grad, &mut work.host);
    adam.step(&work.host, &mut work.step);
}
