//! SR1 with Hessian-vector products (ALGORITHM.md §2.8): s = z, y = H·z (swapped with
//! `inverse`), r = y − B·s, ρ = rᵀs. The update is accepted when |ρ| > tol·‖r‖·‖s‖ and is
//! r·rᵀ/ρ: the column r/√|ρ| with α = sign(ρ) (dropped when negative with `positive_only`).
//! B is the current approximation Q·diag(L)·Qᵀ (0 before the first basis).

use super::probes::{Probes, approximation_times};
use super::{Curvature, Observation, Observed, Requirements};
use crate::backend::Backend;
use crate::basis::{Basis, Correction};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};

pub struct Sr1<B: Backend> {
    probes: Probes<B::Vector>,
    tol: f64,
    inverse: bool,
    positive_only: bool,
    /// B·s, then r/√|ρ|.
    column: Option<B::Vector>,
}

impl<B: Backend> Sr1<B> {
    pub fn new(c: &Component) -> Self {
        Sr1 {
            probes: Probes::new(c),
            tol: c.f64("tol"),
            inverse: c.bool("inverse"),
            positive_only: c.bool("positive_only"),
            column: None,
        }
    }
}

impl<B: Backend> Curvature<B> for Sr1<B> {
    fn requirements(&self) -> Requirements {
        Requirements {
            probes: 1,
            ..Requirements::default()
        }
    }

    fn needs_eigenvalues(&self) -> bool {
        true
    }

    fn draw_probes(
        &self,
        be: &B,
        grad: &B::Vector,
        basis: &mut dyn Basis<B>,
        rng: &mut Rng,
        probes: &mut [B::Vector],
    ) -> Result<()> {
        self.probes.draw(be, grad, basis, rng, &mut probes[0])
    }

    fn prepare(&mut self, be: &B, update: bool, _batch: usize) -> Result<usize> {
        self.probes.reserve(be)?;
        if update && self.column.is_none() {
            self.column = Some(be.vector()?);
        }
        Ok(usize::from(update))
    }

    fn observe<'a>(
        &'a mut self,
        be: &B,
        obs: &Observation<'a, B::Vector>,
        basis: &mut dyn Basis<B>,
    ) -> Observed<'a, B::Vector> {
        if !obs.update {
            return Observed::nothing();
        }
        self.probes.commit(be);
        let (z, hz) = (&obs.probes[0], &obs.hvps[0]);
        let (s, y) = if self.inverse { (hz, z) } else { (z, hz) };
        let r = self.column.as_mut().expect("allocated in prepare");
        approximation_times(be, basis, s, r);
        // r = y − B·s
        be.scale(-1.0, r);
        be.axpy(1.0, y, r);
        let rho = be.dot(r, s);
        let accepted = rho.abs() > self.tol * be.dot(r, r).sqrt() * be.dot(s, s).sqrt();
        if !accepted || rho == 0.0 || (self.positive_only && rho < 0.0) {
            return Observed::nothing();
        }
        be.scale(1.0 / rho.abs().sqrt(), r);
        Observed {
            correction: Some(Correction {
                columns: vec![&*r],
                alpha: vec![rho.signum()],
                z: None,
                gradient_column: None,
            }),
            gradient: None,
        }
    }

    fn after_step(&mut self, be: &B, params: &B::InOut<'_>, next_update: bool) {
        self.probes.after_step(be, params, next_update);
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.probes.bytes(be)
            + if self.column.is_some() {
                be.matrix_bytes(1)
            } else {
                0
            }
    }

    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        self.probes.save(be, enc);
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.probes.load(be, dec)
    }
}
