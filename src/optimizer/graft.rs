//! `diagonal=graft`: the low-rank step takes the length of the step a diagonal Adam would take
//! on the whole gradient (grafting, as in Distributed Shampoo): x ← x − lr·(‖d‖/‖Q·û‖)·Q·û with
//! d = Adam(g). The direction stays LRE's; the length, and so the useful learning rates, are
//! Adam's.

use super::diagonal_adam::{DiagonalAdam, Work};
use crate::backend::Backend;
use crate::basis::Basis;

/// The factor ‖d‖/‖Q·û‖ for this step's gradient and update (0 when Q·û = 0), advancing the
/// diagonal moments with `grad`.
pub(super) fn factor<B: Backend>(
    be: &B,
    basis: &mut dyn Basis<B>,
    grad: &B::Vector,
    update: &[f64],
    adam: &mut DiagonalAdam,
    work: &mut Work<B>,
) -> f64 {
    be.download(grad, &mut work.host);
    adam.step(&work.host, &mut work.step);
    let adam_norm = work.step.iter().map(|d| d * d).sum::<f64>().sqrt();
    be.scale(0.0, &mut work.vector);
    basis.add_unprojected(be, update, 1.0, be.as_inout(&mut work.vector));
    let lre_norm = be.dot(&work.vector, &work.vector).sqrt();
    if lre_norm > 0.0 {
        adam_norm / lre_norm
    } else {
        0.0
    }
}
