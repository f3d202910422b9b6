//! LInv and LInvSqrt (docs/algorithm.md §5.8): û = u / L^p with the basis's regularized eigenvalues
//! L (p = 1: a Newton step for Hessian curvatures; p = 1/2: full-matrix AdaGrad in the subspace
//! for covariance curvatures). Stateless; needs a basis with eigenvalues (checked when the
//! optimizer is created).

use super::{Context, Inner};
use crate::rng::Rng;
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use crate::component::Component;
use crate::error::Result;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 2] = [
    ComponentSpec {
        name: "l_inv_sqrt",
        params: &[],
        summary: "u / sqrt(L): full-matrix AdaGrad in the subspace (covariance curvatures)",
    },
    ComponentSpec {
        name: "l_inv",
        params: &[],
        summary: "u / L: a Newton step in the subspace (Hessian curvatures)",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    let power = if c.name() == "l_inv" { 1.0 } else { 0.5 };
    Ok(Box::new(LInv::new(power)))
}

/// Stateless.
pub fn state(_c: &Component, _dims: &Dims) -> Layout {
    Layout::new()
}

pub struct LInv {
    power: f64,
}

impl LInv {
    pub fn new(power: f64) -> Self {
        LInv { power }
    }
}

impl Inner for LInv {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        let values = ctx
            .eigenvalues
            .expect("l_inv: the optimizer checks for eigenvalues at creation");
        for (ui, l) in u.iter_mut().zip(values) {
            *ui /= if self.power == 1.0 {
                *l
            } else {
                l.powf(self.power)
            };
        }
    }

    fn reproject(&mut self, _c: &Mat<f64>, _rng: &mut Rng) {}

    fn needs_eigenvalues(&self) -> bool {
        true
    }
}
