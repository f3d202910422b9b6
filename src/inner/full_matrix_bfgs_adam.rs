//! FullMatrixBFGSAdam (docs/algorithm.md §5.14): Adam preconditioned by the inverse of a k×k BFGS
//! matrix built from projected Hessian-vector products. Defaults β1 = 0.9, β2 = 0.99 (none: no
//! averaging), ε = 1e-6, eig_tol = 1e-12, damping = rdamping = 1e-8, tol = 1e-16,
//! use_eigh = false. Needs Hessian-vector products.
//!
//! m ← β1·m + (1−β1)·u every step; on steps with a Hessian sample, each probe (s = z, y = Hz)
//! gives the BFGS update B⁺ = B + y·yᵀ/(sᵀy) − (Bs)(Bs)ᵀ/(sᵀBs), skipped when sᵀy < tol, with
//! sᵀBs kept at least 2·tiny in magnitude (sign kept); the reference has one probe, several are
//! applied in turn. Then B ← β2·B + (1−β2)·B⁺ (a damped BFGS step), or B ← B⁺ without β2.
//! û = P·m̂ with P = B̂⁻¹, B̂ = B'/(1−β2^t) + ε·I (no debiasing without β2): a plain inverse, or
//! with use_eigh the eigendecomposition regularized by (eig_tol, damping, rdamping); if either
//! fails, P = diag(|1/B̂_ii|).
//! Compat (§7 item 14): B starts at I and is debiased (B̂ ≈ 100·I at t = 1), an implicit
//! warm-up; steps before the first sample precondition with it (the reference refuses them).
//! Reprojection: m ← C·m, d ← diag(C·B'·Cᵀ), B ← C·B·Cᵀ (see `full_matrix`).

use super::full_matrix::{
    FullMatrixState, diagonal_fallback, full_matrix_state_methods, regularization,
};
use super::{Context, Inner, SAFE_FLOOR};
use crate::component::Component;
use crate::linalg::{Regularization, inverse, mat_vec, matrix_function};
use crate::rng::Rng;
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::{AMSGRAD, BETA1, DAMPING, EIG_TOL, RDAMPING, eps};
use crate::component::{Range, boolean, float, opt_float};
use crate::error::Result;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "full_matrix_bfgs_adam",
        params: &[
            BETA1,
            opt_float(
                "beta2",
                Some(0.99),
                Range::BETA,
                "decay of the BFGS matrix; none = no decay",
            ),
            eps(1e-6),
            AMSGRAD,
            EIG_TOL,
            DAMPING,
            RDAMPING,
            float(
                "tol",
                1e-16,
                Range::NON_NEGATIVE,
                "skip updates with sᵀy < tol",
            ),
            boolean("use_eigh", false, "invert through an eigendecomposition"),
        ],
        summary: "Adam preconditioned by a k×k BFGS matrix",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(FullMatrixBfgsAdam::new(c)))
}

pub fn state(c: &Component, dims: &Dims) -> Layout {
    super::full_matrix::state(c, dims)
}

pub struct FullMatrixBfgsAdam {
    beta1: f64,
    beta2: Option<f64>,
    eps: f64,
    amsgrad_beta: Option<f64>,
    tol: f64,
    /// The regularization of the eigendecomposition, with use_eigh; a plain inverse without.
    eigh: Option<Regularization>,
    pub state: Option<FullMatrixState>,
}

impl FullMatrixBfgsAdam {
    pub fn new(c: &Component) -> Self {
        FullMatrixBfgsAdam {
            beta1: c.f64("beta1"),
            beta2: c.opt_f64("beta2"),
            eps: c.f64("eps"),
            amsgrad_beta: c.opt_f64("amsgrad_beta"),
            tol: c.f64("tol"),
            eigh: c.bool("use_eigh").then(|| regularization(c, false)),
            state: None,
        }
    }
}

/// One BFGS update of B with the pair (s, y); B itself when sᵀy < tol.
pub fn bfgs_update(b: &Mat<f64>, s: &[f64], y: &[f64], tol: f64) -> Mat<f64> {
    let sy: f64 = s.iter().zip(y).map(|(a, b)| a * b).sum();
    if sy < tol {
        return b.clone();
    }
    let bs = mat_vec(b.as_ref(), s);
    let sbs: f64 = s.iter().zip(&bs).map(|(a, b)| a * b).sum();
    // Only the magnitude is floored: a (numerically) negative sᵀBs keeps its sign.
    let sbs = if sbs.abs() < SAFE_FLOOR {
        SAFE_FLOOR.copysign(sbs)
    } else {
        sbs
    };
    Mat::from_fn(b.nrows(), b.ncols(), |i, j| {
        b[(i, j)] + y[i] * y[j] / sy - bs[i] * bs[j] / sbs
    })
}

impl Inner for FullMatrixBfgsAdam {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        let s = self
            .state
            .get_or_insert_with(|| FullMatrixState::new(u.len()));
        s.begin(u, self.beta1);
        if let Some(sample) = ctx.hessian_probes() {
            let updated = sample.probes().fold(s.matrix.clone(), |b, (z, hz)| {
                bfgs_update(&b, z, hz, self.tol)
            });
            match self.beta2 {
                Some(beta2) => s.blend(beta2, &updated, self.amsgrad_beta),
                None => s.replace(updated, self.amsgrad_beta),
            }
        }
        s.precondition(u, self.beta1, |s| {
            let bias = self.beta2.map_or(1.0, |b| 1.0 - b.powf(s.t as f64));
            let b = s.debiased(bias, self.eps);
            match &self.eigh {
                Some(reg) => matrix_function(&b, reg, |l| 1.0 / l),
                None => inverse(&b),
            }
            .unwrap_or_else(|| diagonal_fallback(&b, |d| (1.0 / d).abs()))
        });
    }

    full_matrix_state_methods!();

    fn needs_hessian(&self) -> bool {
        true
    }
}
