//! `diagonal=complement`, low rank plus diagonal: the low-rank step discards the gradient's part
//! outside span(Q); this option steps on that part too, with a diagonal Adam:
//! x ← x − lr·Q·û − lr·Adam(r), r = g − Q·ĝ, ĝ = Qᵀg.
//!
//! With `ggt` over gradients the current gradient is a window column, so r is only what
//! `eig_tol` dropped; rank-limited bases (`eigen`, `random`, …) and `update_freq > 1` leave
//! more of the gradient outside span(Q). A part below √ε·‖g‖ (ε of the dtype) counts as
//! round-off and is dropped.

use super::diagonal_adam::{DiagonalAdam, Work};
use crate::Dtype;
use crate::backend::{Backend, Scalar};
use crate::basis::Basis;

/// Writes Adam(g − Q·ĝ) to `work.step` (the caller adds −lr times it), `projected` being
/// ĝ = Qᵀg.
pub(super) fn step<B: Backend>(
    be: &B,
    basis: &mut dyn Basis<B>,
    grad: &B::Vector,
    projected: &[f64],
    adam: &mut DiagonalAdam,
    work: &mut Work<B>,
) {
    be.copy(grad, &mut work.vector);
    basis.add_unprojected(be, projected, -1.0, be.as_inout(&mut work.vector));
    // Adam scales every entry to about ±1, round-off included: a part below √ε·‖g‖ is the
    // projection's rounding, not gradient, and is dropped.
    let epsilon = match B::Elem::DTYPE {
        Dtype::F32 => f64::from(f32::EPSILON),
        Dtype::F64 => f64::EPSILON,
    };
    let outside = be.dot(&work.vector, &work.vector);
    if outside <= epsilon * be.dot(grad, grad) {
        be.scale(0.0, &mut work.vector);
    }
    be.download(&work.vector, &mut work.host);
    adam.step(&work.host, &mut work.step);
}
