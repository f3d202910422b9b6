//! NaturalGradient and GaussNewton (inner; docs/algorithm.md §5.15, with the §7 item 17 fix): one
//! member under two names (the reference's classes differ only in name). Default reg = 1e-8.
//! Needs per-sample Jacobians.
//!
//! On steps that bring a projected Jacobian J_p = Qᵀ·Jᵀ (k × b: one column per sample or
//! residual) it is kept; every step solves (J_p·J_pᵀ + reg·I)·x = u in the least-squares sense
//! and returns û = x. This is the intended algebra; the reference's products have the wrong
//! shapes unless b = n. The k×k system is solved through its eigendecomposition, dropping
//! eigenvalues ≤ k·eps·λ_max like LAPACK's least-squares driver, so reg = 0 with a rank-deficient
//! J_p gives the minimum-norm solution instead of failing (with reg > 0 nothing is dropped unless
//! the system is singular to working precision). If the eigensolver fails the update is zero.
//! Before the first Jacobian there is no curvature, so the update is zero (the reference refuses
//! such a step).
//! Reprojection: J_p ← C·J_p.

use super::reproject::columns;
use super::{Context, Inner};
use crate::component::Component;
use crate::error::Result;
use crate::linalg::{Regularization, mat_vec, matrix_function, mul};
use crate::rng::Rng;
use crate::state::{Decoder, Encoder, get_matrix, put_matrix};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use crate::component::{Range, float};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 2] = [
    ComponentSpec {
        name: "natural_gradient",
        params: &[float(
            "reg",
            1e-8,
            Range::NON_NEGATIVE,
            "Tikhonov regularization",
        )],
        summary: "least-squares natural gradient from per-sample gradients",
    },
    ComponentSpec {
        name: "gauss_newton",
        params: &[float(
            "reg",
            1e-8,
            Range::NON_NEGATIVE,
            "Tikhonov regularization",
        )],
        summary: "least-squares Gauss-Newton step from per-residual gradients",
    },
];

/// One member under both names (docs/algorithm.md §5.15).
pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(NaturalGradient::new(c)))
}

/// The last batch's projected Jacobian: its size follows the batch.
pub fn state(_c: &Component, _dims: &Dims) -> Layout {
    Layout::new().batch_sized("jacobian")
}

pub struct NaturalGradient {
    reg: f64,
    /// The last projected Jacobian J_p (k × b).
    pub jacobian: Option<Mat<f64>>,
}

impl NaturalGradient {
    pub fn new(c: &Component) -> Self {
        NaturalGradient {
            reg: c.f64("reg"),
            jacobian: None,
        }
    }
}

impl Inner for NaturalGradient {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        if let Some(j) = ctx.jacobian {
            self.jacobian = Some(j.clone());
        }
        let Some(j) = &self.jacobian else {
            u.fill(0.0);
            return;
        };
        let k = u.len();
        let jjt = mul(j.as_ref(), j.transpose());
        let system = Mat::from_fn(k, k, |a, b| {
            jjt[(a, b)] + if a == b { self.reg } else { 0.0 }
        });
        let least_squares = Regularization {
            truncate: None,
            tol: Some(k as f64 * f64::EPSILON),
            damping: 0.0,
            rdamping: 0.0,
            abs: false,
        };
        *u = match matrix_function(&system, &least_squares, |l| 1.0 / l) {
            Some(pseudo_inverse) => mat_vec(pseudo_inverse.as_ref(), u),
            // Nothing kept (a zero system, whose minimum-norm solution is 0) or no convergence.
            None => vec![0.0; k],
        };
    }

    fn reproject(&mut self, c: &Mat<f64>, _rng: &mut Rng) {
        if let Some(j) = &mut self.jacobian {
            *j = columns(c, j);
        }
    }

    fn needs_jacobian(&self) -> bool {
        true
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(j) = &self.jacobian {
            put_matrix(enc, "jacobian", j);
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        self.jacobian = if dec.has("jacobian") {
            Some(get_matrix(dec, "jacobian", None)?)
        } else {
            None
        };
        Ok(())
    }
}
