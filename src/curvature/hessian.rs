//! The Hessian curvatures (docs/algorithm.md §2.7, §2.8) share everything but their correction
//! rule: one probe z per update step, its product H·z from the caller, and the parameter vectors a
//! "s" probe needs. [`Hessian`] does the shared part; a [`Rule`] (Hutchinson, SR1, BFGS) turns
//! (z, H·z) into a correction.

use super::Approximation;
use super::probes::Probes;
use super::{Curvature, Declared, Observation, Observed, Requirements, Z_CHOICES};
use crate::backend::Backend;
use crate::component::Component;
use crate::component::{ParamSpec, boolean, word};
use crate::correction::Correction;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::layout::{Dims, Layout};
use crate::state::{Decoder, Encoder};

/// How a probe z and its product H·z become a correction.
pub trait Rule<B: Backend>: Send {
    /// Whether the rule uses the current approximation B·s (the basis must have eigenvalues).
    fn needs_eigenvalues(&self) -> bool {
        false
    }

    /// Allocates the rule's buffers (before a step changes anything); returns how many vectors
    /// its correction has at most.
    fn reserve(&mut self, be: &B) -> Result<usize>;

    /// The correction for probe `z` with product `hz`, or `None` when the update is skipped.
    fn correct<'a>(
        &'a mut self,
        be: &B,
        z: &'a B::Vector,
        hz: &'a B::Vector,
        approx: &mut dyn Approximation<B>,
    ) -> Option<Correction<'a, B::Vector>>;

    /// Bytes of n-sized buffers held.
    fn bytes(&self, be: &B) -> usize;
}

/// The probe of the quasi-Newton curvatures (bfgs, sr1): the previous step, s.
pub const Z_STEP: ParamSpec = word("z", "s", Z_CHOICES, "probe vector (s: the previous step)");

/// Whether probes are projected off the current basis (every Hessian curvature has it).
pub const fn orthogonalize(default: bool) -> ParamSpec {
    boolean(
        "orthogonalize",
        default,
        "project probes off the current basis",
    )
}

/// The state every Hessian curvature keeps: the points x_now and x_prev. A correction has at
/// most two columns, kept as a pair Y·Zᵀ unless the optimizer symmetrizes.
pub fn declared(dims: &Dims) -> Declared {
    Declared {
        layout: Layout::new().vectors("x_now", 1u8).vectors("x_prev", 1u8),
        columns: Some(2),
        paired: !dims.symmetrize,
    }
}

/// A Hessian curvature: probes plus a correction rule.
pub struct Hessian<B: Backend, R> {
    probes: Probes<B::Vector>,
    rule: R,
}

impl<B: Backend, R: Rule<B>> Hessian<B, R> {
    /// `c` supplies the probe settings (`z`, `orthogonalize`).
    pub fn new(c: &Component, rule: R) -> Self {
        Hessian {
            probes: Probes::new(c),
            rule,
        }
    }
}

impl<B: Backend, R: Rule<B>> Curvature<B> for Hessian<B, R> {
    fn requirements(&self) -> Requirements {
        Requirements {
            probes: 1,
            ..Requirements::default()
        }
    }

    fn needs_eigenvalues(&self) -> bool {
        self.rule.needs_eigenvalues()
    }

    fn draw_probes(
        &self,
        be: &B,
        grad: &B::Vector,
        approx: &mut dyn Approximation<B>,
        rng: &mut Rng,
        probes: &mut [B::Vector],
    ) -> Result<()> {
        self.probes.draw(be, grad, approx, rng, &mut probes[0])
    }

    fn prepare(&mut self, be: &B, update: bool, _batch: usize) -> Result<usize> {
        self.probes.reserve(be)?;
        if update { self.rule.reserve(be) } else { Ok(0) }
    }

    fn observe<'a>(
        &'a mut self,
        be: &B,
        obs: &Observation<'a, B::Vector>,
        approx: &mut dyn Approximation<B>,
    ) -> Observed<'a, B::Vector> {
        if !obs.update {
            return Observed::nothing();
        }
        self.probes.commit(be);
        let correction = self.rule.correct(be, &obs.probes[0], &obs.hvps[0], approx);
        Observed {
            correction,
            gradient: None,
        }
    }

    fn after_step(&mut self, be: &B, params: &B::InOut<'_>, next_update: bool) {
        self.probes.after_step(be, params, next_update);
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.probes.bytes(be) + self.rule.bytes(be)
    }

    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        self.probes.save(be, enc);
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.probes.load(be, dec)
    }
}

/// A lazily allocated scratch vector.
pub fn scratch<'v, B: Backend>(
    be: &B,
    slot: &'v mut Option<B::Vector>,
) -> Result<&'v mut B::Vector> {
    match slot {
        Some(v) => Ok(v),
        empty => Ok(empty.insert(be.vector()?)),
    }
}
