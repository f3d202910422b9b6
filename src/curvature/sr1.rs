//! SR1 with Hessian-vector products (docs/algorithm.md §2.8): s = z, y = H·z (swapped with
//! `inverse`), r = y − B·s, ρ = rᵀs. The update is accepted when |ρ| > tol·‖r‖·‖s‖ and is
//! r·rᵀ/ρ: the column r/√|ρ| with α = sign(ρ) (dropped when negative with `positive_only`).
//! B is the current approximation Q·diag(L)·Qᵀ (0 before the first basis).

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
use crate::component::{Range, boolean, float};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "sr1",
        params: &[
            Z_STEP,
            orthogonalize(true),
            float(
                "tol",
                1e-16,
                Range::NON_NEGATIVE,
                "skip updates with small |rᵀs|",
            ),
            boolean("inverse", false, "approximate the inverse Hessian"),
            boolean("positive_only", false, "drop negative updates"),
        ],
        summary: "symmetric rank-one update with Hessian-vector products",
    },
];

pub fn build<B: Backend + 'static>(c: &Component, _symmetrize: bool) -> Result<Box<dyn Curvature<B>>> {
    Ok(Box::new(Hessian::new(c, Sr1::<B>::new(c))))
}

/// x_now and x_prev; a correction has at most two columns, kept as a pair unless
/// symmetrized.
pub fn state(_c: &Component, dims: &Dims) -> Declared {
    super::hessian::declared(dims)
}

pub struct Sr1<B: Backend> {
    tol: f64,
    inverse: bool,
    positive_only: bool,
    /// B·s, then r/√|ρ|.
    column: Option<B::Vector>,
}

impl<B: Backend> Sr1<B> {
    pub fn new(c: &Component) -> Self {
        Sr1 {
            tol: c.f64("tol"),
            inverse: c.bool("inverse"),
            positive_only: c.bool("positive_only"),
            column: None,
        }
    }
}

impl<B: Backend> Rule<B> for Sr1<B> {
    fn needs_eigenvalues(&self) -> bool {
        true
    }

    fn reserve(&mut self, be: &B) -> Result<usize> {
        scratch(be, &mut self.column)?;
        Ok(1)
    }

    fn correct<'a>(
        &'a mut self,
        be: &B,
        z: &'a B::Vector,
        hz: &'a B::Vector,
        approx: &mut dyn Approximation<B>,
    ) -> Option<Correction<'a, B::Vector>> {
        let (s, y) = if self.inverse { (hz, z) } else { (z, hz) };
        let r = self.column.as_mut().expect("reserved");
        approximation_times(be, approx, s, r);
        // r = y − B·s
        be.scale(-1.0, r);
        be.axpy(1.0, y, r);
        let rho = be.dot(r, s);
        let accepted = rho.abs() > self.tol * be.dot(r, r).sqrt() * be.dot(s, s).sqrt();
        if !accepted || rho == 0.0 || (self.positive_only && rho < 0.0) {
            return None;
        }
        be.scale(1.0 / rho.abs().sqrt(), r);
        Some(Correction {
            columns: vec![&*r],
            alpha: vec![rho.signum()],
            z: None,
            gradient_column: None,
        })
    }

    fn bytes(&self, be: &B) -> usize {
        if self.column.is_some() {
            be.matrix_bytes(1)
        } else {
            0
        }
    }
}
