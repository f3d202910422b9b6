//! FullMatrixHutchinsonAdam (docs/algorithm.md §5.13): Adam preconditioned by an EMA of full k×k
//! Hutchinson Hessian estimates. Defaults β1 = 0.9, β2 = 0.99, ε = 1e-6, eig_tol = 1e-12,
//! damping = rdamping = 1e-8, abs = true. Needs Hessian-vector products.
//!
//! m ← β1·m + (1−β1)·u every step; on steps with a Hessian sample (projected probes z, Hz):
//! H ← β2·H + (1−β2)·Ĥ_est with Ĥ_est = ½(Hz·zᵀ + z·Hzᵀ), averaged over the probes (the reference
//! has one). û = P·m̂ with P = Ĥ⁻¹, Ĥ = H'/(1−β2^t) + ε·I, through the eigendecomposition with
//! |λ| if abs (re-sorted before the regularization: §7 item 7) and (eig_tol, damping, rdamping);
//! if that fails or keeps nothing, P = diag(|1/Ĥ_ii|).
//! Compat (§7 item 14): H starts at I and is debiased with the step count t, not the number of
//! Hessian samples — an implicit identity warm-up. Steps before the first sample precondition
//! with that identity start (the reference refuses such a first step).
//! Reprojection: m ← C·m, d ← diag(C·H'·Cᵀ), H ← C·H·Cᵀ (see `full_matrix`).

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
use crate::component::boolean;
use crate::error::Result;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "full_matrix_hutchinson_adam",
        params: &[
            BETA1,
            BETA2,
            eps(1e-6),
            AMSGRAD,
            EIG_TOL,
            DAMPING,
            RDAMPING,
            boolean("abs", true, "use |eigenvalues|"),
        ],
        summary: "Adam preconditioned by a full k×k Hutchinson Hessian",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(FullMatrixHutchinsonAdam::new(c)))
}

pub fn state(c: &Component, dims: &Dims) -> Layout {
    super::full_matrix::state(c, dims)
}

pub struct FullMatrixHutchinsonAdam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    amsgrad_beta: Option<f64>,
    reg: Regularization,
    pub state: Option<FullMatrixState>,
}

impl FullMatrixHutchinsonAdam {
    pub fn new(c: &Component) -> Self {
        FullMatrixHutchinsonAdam {
            beta1: c.f64("beta1"),
            beta2: c.f64("beta2"),
            eps: c.f64("eps"),
            amsgrad_beta: c.opt_f64("amsgrad_beta"),
            reg: regularization(c, c.bool("abs")),
            state: None,
        }
    }
}

impl Inner for FullMatrixHutchinsonAdam {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        let k = u.len();
        let s = self.state.get_or_insert_with(|| FullMatrixState::new(k));
        s.begin(u, self.beta1);
        if let Some(sample) = ctx.hessian_probes() {
            let weight = 0.5 / sample.z.len() as f64;
            let estimate = Mat::from_fn(k, k, |i, j| {
                sample
                    .probes()
                    .map(|(z, hz)| weight * (hz[i] * z[j] + z[i] * hz[j]))
                    .sum()
            });
            s.blend(self.beta2, &estimate, self.amsgrad_beta);
        }
        s.precondition(u, self.beta1, |s| {
            let h = s.debiased(1.0 - self.beta2.powf(s.t as f64), self.eps);
            matrix_function(&h, &self.reg, |l| 1.0 / l)
                .unwrap_or_else(|| diagonal_fallback(&h, |d| (1.0 / d).abs()))
        });
    }

    full_matrix_state_methods!();

    fn needs_hessian(&self) -> bool {
        true
    }
}
