//! FullHutchinsonHessian (docs/algorithm.md §2.7): the correction is Hz·zᵀ (Y = Hz, Z = z). With
//! the optimizer's `symmetrize` (the default) it becomes ¼(Hz + z)(Hz + z)ᵀ, which estimates
//! ((H + I)/2)² for E[zzᵀ] = I (§1.3; §7 item 6: scale-dependent, kept as documented).

use super::hessian::{Rule, scratch};
use crate::backend::Backend;
use super::Approximation;
use crate::correction::Correction;
use crate::error::Result;
use crate::component::ComponentSpec;
use crate::state::layout::Dims;
use super::{Curvature, Declared, Z_CHOICES};
use super::hessian::{Hessian, orthogonalize};
use crate::component::{Component, word};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "full_hutchinson_hessian",
        params: &[
            word("z", "rademacher", Z_CHOICES, "probe vector distribution"),
            orthogonalize(false),
        ],
        summary: "Hessian from one Hessian-vector product per update (correction Hz·zᵀ)",
    },
];

pub fn build<B: Backend + 'static>(c: &Component, symmetrize: bool) -> Result<Box<dyn Curvature<B>>> {
    Ok(Box::new(Hessian::new(c, Hutchinson::<B>::new(symmetrize))))
}

/// x_now and x_prev; a correction has at most two columns, kept as a pair unless
/// symmetrized.
pub fn state(_c: &Component, dims: &Dims) -> Declared {
    super::hessian::declared(dims)
}

pub struct Hutchinson<B: Backend> {
    symmetrize: bool,
    /// (Hz + z)/2 of this step.
    symmetric: Option<B::Vector>,
}

impl<B: Backend> Hutchinson<B> {
    pub fn new(symmetrize: bool) -> Self {
        Hutchinson {
            symmetrize,
            symmetric: None,
        }
    }
}

impl<B: Backend> Rule<B> for Hutchinson<B> {
    fn reserve(&mut self, be: &B) -> Result<usize> {
        if self.symmetrize {
            scratch(be, &mut self.symmetric)?;
            Ok(1)
        } else {
            // The pair (Hz, z).
            Ok(2)
        }
    }

    fn correct<'a>(
        &'a mut self,
        be: &B,
        z: &'a B::Vector,
        hz: &'a B::Vector,
        _approx: &mut dyn Approximation<B>,
    ) -> Option<Correction<'a, B::Vector>> {
        Some(match &mut self.symmetric {
            Some(y) if self.symmetrize => {
                be.copy(z, y);
                be.axpy(1.0, hz, y);
                be.scale(0.5, y);
                Correction {
                    columns: vec![&*y],
                    alpha: vec![1.0],
                    z: None,
                    gradient_column: None,
                }
            }
            _ => Correction {
                columns: vec![hz],
                alpha: vec![1.0],
                z: Some(vec![z]),
                gradient_column: None,
            },
        })
    }

    fn bytes(&self, be: &B) -> usize {
        if self.symmetric.is_some() {
            be.matrix_bytes(1)
        } else {
            0
        }
    }
}
