//! FullHutchinsonHessian (ALGORITHM.md §2.7): one Hessian-vector product per update step; the
//! correction is Hz·zᵀ (Y = Hz, Z = z). With the optimizer's `symmetrize` (the default) it
//! becomes ¼(Hz + z)(Hz + z)ᵀ, which estimates ((H + I)/2)² for E[zzᵀ] = I (§1.3; §7 item 6:
//! scale-dependent, kept as documented).

use super::probes::Probes;
use super::{Curvature, Observation, Observed, Requirements};
use crate::backend::Backend;
use crate::basis::{Basis, Correction};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};

pub struct FullHutchinsonHessian<B: Backend> {
    probes: Probes<B::Vector>,
    symmetrize: bool,
    /// (Hz + z)/2 of this step.
    symmetric: Option<B::Vector>,
}

impl<B: Backend> FullHutchinsonHessian<B> {
    pub fn new(c: &Component, symmetrize: bool) -> Self {
        FullHutchinsonHessian {
            probes: Probes::new(c),
            symmetrize,
            symmetric: None,
        }
    }
}

impl<B: Backend> Curvature<B> for FullHutchinsonHessian<B> {
    fn requirements(&self) -> Requirements {
        Requirements {
            probes: 1,
            ..Requirements::default()
        }
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
        if update && self.symmetrize && self.symmetric.is_none() {
            self.symmetric = Some(be.vector()?);
        }
        // Without symmetrize the correction is the pair (Hz, z).
        Ok(usize::from(update) * if self.symmetrize { 1 } else { 2 })
    }

    fn observe<'a>(
        &'a mut self,
        be: &B,
        obs: &Observation<'a, B::Vector>,
        _basis: &mut dyn Basis<B>,
    ) -> Observed<'a, B::Vector> {
        if !obs.update {
            return Observed::nothing();
        }
        self.probes.commit(be);
        let (z, hz) = (&obs.probes[0], &obs.hvps[0]);
        let correction = if self.symmetrize {
            let y = self.symmetric.as_mut().expect("allocated in prepare");
            be.copy(z, y);
            be.axpy(1.0, hz, y);
            be.scale(0.5, y);
            Correction {
                columns: vec![&*y],
                alpha: vec![1.0],
                z: None,
                gradient_column: None,
            }
        } else {
            Correction {
                columns: vec![hz],
                alpha: vec![1.0],
                z: Some(vec![z]),
                gradient_column: None,
            }
        };
        Observed {
            correction: Some(correction),
            gradient: None,
        }
    }

    fn after_step(&mut self, be: &B, params: &B::InOut<'_>, next_update: bool) {
        self.probes.after_step(be, params, next_update);
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.probes.bytes(be)
            + if self.symmetric.is_some() {
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
