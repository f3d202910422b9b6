//! BFGS with Hessian-vector products (docs/algorithm.md §2.8): s = z, y = H·z, B the current
//! approximation. With Powell damping (c): if sᵀy < c·sᵀBs, y ← θ·y + (1−θ)·B·s with
//! θ = clamp((1−c)·sᵀBs / (sᵀBs − sᵀy + tol), 0, 1). Skipped when sᵀy ≤ tol. The update
//! B ← B + yyᵀ/sᵀy − Bs(Bs)ᵀ/sᵀBs is the columns [y/√sᵀy, Bs/√(sᵀBs + tol)], α = [+1, −1].
//! A zero B·s column (s ⊥ the basis, the usual case with `orthogonalize`) is left out: it
//! adds nothing to the matrix.

use super::hessian::{Rule, scratch};
use super::probes::approximation_times;
use crate::backend::Backend;
use super::Approximation;
use crate::correction::Correction;
use crate::component::Component;
use crate::error::Result;
use crate::component::ComponentSpec;
use crate::state::layout::Dims;
use super::{Curvature, Declared};
use super::hessian::{Hessian, Z_STEP, orthogonalize};
use crate::component::{Range, float};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "bfgs",
        params: &[
            Z_STEP,
            orthogonalize(true),
            float("c", 0.2, Range::NON_NEGATIVE, "Powell damping"),
            float(
                "tol",
                1e-12,
                Range::NON_NEGATIVE,
                "skip updates with sᵀy <= tol",
            ),
        ],
        summary: "BFGS update with Hessian-vector products in place of gradient differences",
    },
];

pub fn build<B: Backend + 'static>(c: &Component, _symmetrize: bool) -> Result<Box<dyn Curvature<B>>> {
    Ok(Box::new(Hessian::new(c, Bfgs::<B>::new(c))))
}

/// x_now and x_prev; a correction has at most two columns, kept as a pair unless
/// symmetrized.
pub fn state(_c: &Component, dims: &Dims) -> Declared {
    super::hessian::declared(dims)
}

pub struct Bfgs<B: Backend> {
    c: f64,
    tol: f64,
    /// B·s and the (damped) y of this step.
    bs: Option<B::Vector>,
    y: Option<B::Vector>,
}

impl<B: Backend> Bfgs<B> {
    pub fn new(c: &Component) -> Self {
        Bfgs {
            c: c.f64("c"),
            tol: c.f64("tol"),
            bs: None,
            y: None,
        }
    }
}

impl<B: Backend> Rule<B> for Bfgs<B> {
    fn needs_eigenvalues(&self) -> bool {
        true
    }

    fn reserve(&mut self, be: &B) -> Result<usize> {
        scratch(be, &mut self.bs)?;
        scratch(be, &mut self.y)?;
        Ok(2)
    }

    fn correct<'a>(
        &'a mut self,
        be: &B,
        s: &'a B::Vector,
        hz: &'a B::Vector,
        approx: &mut dyn Approximation<B>,
    ) -> Option<Correction<'a, B::Vector>> {
        let (bs, y) = (
            self.bs.as_mut().expect("reserved"),
            self.y.as_mut().expect("reserved"),
        );
        approximation_times(be, approx, s, bs);
        be.copy(hz, y);
        let s_bs = be.dot(s, bs);
        let mut sy = be.dot(s, y);
        if sy < self.c * s_bs {
            let theta = ((1.0 - self.c) * s_bs / (s_bs - sy + self.tol)).clamp(0.0, 1.0);
            be.scale(theta, y);
            be.axpy(1.0 - theta, bs, y);
            sy = be.dot(s, y);
        }
        if sy <= self.tol {
            return None;
        }
        be.scale(1.0 / sy.sqrt(), y);
        let mut columns = vec![&*y];
        let mut alpha = vec![1.0];
        if be.dot(bs, bs) > 0.0 {
            be.scale(1.0 / (s_bs + self.tol).sqrt(), bs);
            columns.push(&*bs);
            alpha.push(-1.0);
        }
        Some(Correction {
            columns,
            alpha,
            z: None,
            gradient_column: None,
        })
    }

    fn bytes(&self, be: &B) -> usize {
        if self.bs.is_some() {
            2 * be.matrix_bytes(1)
        } else {
            0
        }
    }
}
