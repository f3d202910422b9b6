//! BFGS with Hessian-vector products (ALGORITHM.md §2.8): s = z, y = H·z, B the current
//! approximation. With Powell damping (c): if sᵀy < c·sᵀBs, y ← θ·y + (1−θ)·B·s with
//! θ = clamp((1−c)·sᵀBs / (sᵀBs − sᵀy + tol), 0, 1). Skipped when sᵀy ≤ tol. The update
//! B ← B + yyᵀ/sᵀy − Bs(Bs)ᵀ/sᵀBs is the columns [y/√sᵀy, Bs/√(sᵀBs + tol)], α = [+1, −1].
//! A zero B·s column (s ⊥ the basis, the usual case with `orthogonalize`) is left out: it
//! adds nothing to the matrix.

use super::probes::{Probes, approximation_times};
use super::{Curvature, Observation, Observed, Requirements};
use crate::backend::Backend;
use crate::basis::{Basis, Correction};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};

pub struct Bfgs<B: Backend> {
    probes: Probes<B::Vector>,
    c: f64,
    tol: f64,
    /// B·s and the (damped) y of this step.
    bs: Option<B::Vector>,
    y: Option<B::Vector>,
}

impl<B: Backend> Bfgs<B> {
    pub fn new(c: &Component) -> Self {
        Bfgs {
            probes: Probes::new(c),
            c: c.f64("c"),
            tol: c.f64("tol"),
            bs: None,
            y: None,
        }
    }
}

impl<B: Backend> Curvature<B> for Bfgs<B> {
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
        if update && self.bs.is_none() {
            self.bs = Some(be.vector()?);
            self.y = Some(be.vector()?);
        }
        Ok(2 * usize::from(update))
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
        let (s, hz) = (&obs.probes[0], &obs.hvps[0]);
        let (bs, y) = (
            self.bs.as_mut().expect("prepared"),
            self.y.as_mut().expect("prepared"),
        );
        approximation_times(be, basis, s, bs);
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
            return Observed::nothing();
        }
        be.scale(1.0 / sy.sqrt(), y);
        let mut columns = vec![&*y];
        let mut alpha = vec![1.0];
        if be.dot(bs, bs) > 0.0 {
            be.scale(1.0 / (s_bs + self.tol).sqrt(), bs);
            columns.push(&*bs);
            alpha.push(-1.0);
        }
        Observed {
            correction: Some(Correction {
                columns,
                alpha,
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
            + if self.bs.is_some() {
                2 * be.matrix_bytes(1)
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
