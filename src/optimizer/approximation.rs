//! The optimizer's answer to a curvature's questions about the current approximation
//! Q·diag(L)·Qᵀ, through its basis (curvatures never see the basis).

use crate::backend::Backend;
use crate::basis::{Basis, Source};
use crate::curvature::Approximation;

/// The current approximation as the basis `0` holds it.
pub struct Current<'a, B: Backend>(pub &'a mut dyn Basis<B>);

impl<B: Backend> Approximation<B> for Current<'_, B> {
    fn has_basis(&self) -> bool {
        self.0.rank().is_some()
    }

    fn remove_span(&mut self, be: &B, z: &mut B::Vector) {
        let mut coords = Vec::new();
        self.0.project(be, Source::Vector(z), &mut coords);
        self.0.add_unprojected(be, &coords, -1.0, be.as_inout(z));
    }

    fn times(&mut self, be: &B, s: &B::Vector, out: &mut B::Vector) -> bool {
        self.0.apply_curvature(be, s, out)
    }
}
