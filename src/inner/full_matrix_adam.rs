//! FullMatrixAdam (docs/algorithm.md §5.11): Adam with a full k×k second moment. Defaults β1 = 0.9,
//! β2 = 0.99, ε = 1e-8, eig_tol = 1e-12, damping = rdamping = 1e-8.
//!
//! m ← β1·m + (1−β1)·u; Σ ← β2·Σ + (1−β2)·u·uᵀ (Σ starts at I: §7 item 14, see `full_matrix`);
//! û = P·m̂ with m̂ = m/(1−β1^t) and P = Σ̂^{-1/2}, Σ̂ = Σ'/(1−β2^t) + ε·I, computed through the
//! eigendecomposition regularized by (eig_tol, damping, rdamping); if that fails or keeps nothing,
//! P = diag(Σ̂)^{-1/2}. P is refreshed on the first step and after each basis change only.
//! Reprojection: m ← C·m, d ← diag(C·Σ'·Cᵀ), Σ ← C·Σ·Cᵀ.

use super::full_matrix::{
    FullMatrixState, diagonal_fallback, full_matrix_state_methods, regularization,
};
use super::{Context, Inner};
use crate::component::Component;
use crate::linalg::{Regularization, matrix_function};
use crate::rng::Rng;
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::{AMSGRAD, BETA1, BETA2, DAMPING, EIG_TOL, RDAMPING, eps};
use crate::error::Result;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "full_matrix_adam",
        params: &[BETA1, BETA2, eps(1e-8), AMSGRAD, EIG_TOL, DAMPING, RDAMPING],
        summary: "Adam with a full k×k second moment",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(FullMatrixAdam::new(c)))
}

pub fn state(c: &Component, dims: &Dims) -> Layout {
    super::full_matrix::state(c, dims)
}

pub struct FullMatrixAdam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    amsgrad_beta: Option<f64>,
    reg: Regularization,
    pub state: Option<FullMatrixState>,
}

impl FullMatrixAdam {
    pub fn new(c: &Component) -> Self {
        FullMatrixAdam {
            beta1: c.f64("beta1"),
            beta2: c.f64("beta2"),
            eps: c.f64("eps"),
            amsgrad_beta: c.opt_f64("amsgrad_beta"),
            reg: regularization(c, false),
            state: None,
        }
    }
}

impl Inner for FullMatrixAdam {
    fn step(&mut self, u: &mut Vec<f64>, _ctx: &Context<'_>, _rng: &mut Rng) {
        let s = self
            .state
            .get_or_insert_with(|| FullMatrixState::new(u.len()));
        s.begin(u, self.beta1);
        let outer = Mat::from_fn(u.len(), u.len(), |i, j| u[i] * u[j]);
        s.blend(self.beta2, &outer, self.amsgrad_beta);
        s.precondition(u, self.beta1, |s| {
            let sigma = s.debiased(1.0 - self.beta2.powf(s.t as f64), self.eps);
            matrix_function(&sigma, &self.reg, |l| 1.0 / l.sqrt())
                .unwrap_or_else(|| diagonal_fallback(&sigma, |d| 1.0 / d.sqrt()))
        });
    }

    full_matrix_state_methods!();
}
