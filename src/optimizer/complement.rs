//! `diagonal=complement`, low rank plus diagonal: the low-rank step discards the gradient's part
//! outside span(Q); this option steps on that part too, with a diagonal Adam:
//! x ← x − lr·Q·û − lr·Adam(r), r = g − Q·ĝ, ĝ = Qᵀg.
//!
//! With `ggt` over gradients the current gradient is a window column, so r is only what
//! `eig_tol` dropped; rank-limited bases (`eigen`, `random`, …) and `update_freq > 1` leave
//! more of the gradient outside span(Q).

use super::diagonal_adam::{DiagonalAdam, Work, add_scaled};
use crate::backend::Backend;
use crate::basis::Basis;

/// Adds −lr·Adam(g − Q·ĝ) to `params`, `projected` being ĝ = Qᵀg.
pub(super) fn step<B: Backend>(
    be: &B,
    basis: &mut dyn Basis<B>,
    grad: &B::Vector,
    projected: &[f64],
    adam: &mut DiagonalAdam,
    work: &mut Work<B>,
    lr: f64,
    params: B::InOut<'_>,
) {
    be.copy(grad, &mut work.vector);
    basis.add_unprojected(be, projected, -1.0, be.as_inout(&mut work.vector));
    be.download(&work.vector, &mut work.host);
    adam.step(&work.host, &mut work.step);
    add_scaled(be, &mut work.step, -lr, params);
}
