//! UnrolledGaussNewton (docs/algorithm.md §2.6, experimental): the last `history_size` gradients
//! act as the rows of a Jacobian and their losses as residuals. The step moves along
//! g_GN = Σ_{last h steps} ℓ̂_i·g_i; the correction is the raw gradients since the last one,
//! after which the history is trimmed to the last h. Needs the loss of every step.

use super::adaptive_loss::AdaptiveLoss;
use super::history::History;
use super::{Curvature, Observation, Observed, Requirements};
use crate::backend::Backend;
use super::Approximation;
use crate::correction::Correction;
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::state::{Decoder, Encoder};
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::Declared;
use crate::component::{boolean, int};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "unrolled_gauss_newton",
        params: &[
            int("history_size", 10, 1, "gradients in the unrolled Jacobian"),
            boolean("adaptive", false, "subtract the minimum previous loss"),
        ],
        summary: "experimental: gradient history as a Gauss-Newton Jacobian (needs the loss)",
    },
];

pub fn build<B: Backend + 'static>(c: &Component, _symmetrize: bool) -> Result<Box<dyn Curvature<B>>> {
    Ok(Box::new(UnrolledGaussNewton::<B>::new(c)))
}

/// The gradients and losses held: the last history_size, plus those of the steps since the
/// last correction (trimmed at the next step); the steps since the last correction and the
/// minimum loss. A correction has the gradients since the previous one as its columns.
pub fn state(c: &Component, dims: &Dims) -> Declared {
    let held = c.usize("history_size").saturating_add(dims.update_freq) as u128;
    let layout = Layout::new()
        .vectors("gradients", held)
        .f64s("losses", held)
        .u64s("since_correction", 1u8)
        .f64s("min_loss", 1u8);
    Declared::columns(layout, dims.update_freq)
}

pub struct UnrolledGaussNewton<B: Backend> {
    history_size: usize,
    gradients: History<B::Vector>,
    /// ℓ̂ of each held gradient.
    losses: Vec<f64>,
    /// Gradients appended since the last correction (the newest ones).
    since_correction: usize,
    loss: AdaptiveLoss,
    /// g_GN of this step.
    combined: Option<B::Vector>,
}

impl<B: Backend> UnrolledGaussNewton<B> {
    pub fn new(c: &Component) -> Self {
        UnrolledGaussNewton {
            history_size: c.usize("history_size"),
            gradients: History::default(),
            losses: Vec::new(),
            since_correction: 0,
            loss: AdaptiveLoss::new(c.bool("adaptive")),
            combined: None,
        }
    }

    /// Drops what is older than the last `history_size` once a correction has consumed it.
    fn trim(&mut self) {
        if self.since_correction == 0 {
            let keep = self.history_size;
            self.gradients.keep_newest(keep);
            let drop = self.losses.len().saturating_sub(keep);
            self.losses.drain(..drop);
        }
    }
}

impl<B: Backend> Curvature<B> for UnrolledGaussNewton<B> {
    fn requirements(&self) -> Requirements {
        Requirements {
            loss: true,
            ..Requirements::default()
        }
    }

    fn prepare(&mut self, be: &B, update: bool, _batch: usize) -> Result<usize> {
        self.trim();
        self.gradients.reserve(be, self.gradients.len() + 1)?;
        if self.combined.is_none() {
            self.combined = Some(be.vector()?);
        }
        Ok(if update { self.since_correction + 1 } else { 0 })
    }

    fn observe<'a>(
        &'a mut self,
        be: &B,
        obs: &Observation<'a, B::Vector>,
        _approx: &mut dyn Approximation<B>,
    ) -> Observed<'a, B::Vector> {
        self.trim();
        let loss = obs
            .loss
            .expect("the optimizer checks that the loss was set");
        let weight = self.loss.next(loss);
        self.gradients.push(be, obs.grad, 1.0);
        self.losses.push(weight);
        self.since_correction += 1;

        let combined = self.combined.as_mut().expect("allocated in prepare");
        be.scale(0.0, combined);
        let held = self.gradients.items();
        let first = held.len().saturating_sub(self.history_size);
        for (g, w) in held[first..].iter().zip(&self.losses[first..]) {
            be.axpy(*w, g, combined);
        }
        let correction = obs.update.then(|| {
            let fresh = std::mem::take(&mut self.since_correction);
            let columns: Vec<&B::Vector> = held[held.len() - fresh..].iter().collect();
            Correction {
                alpha: vec![1.0; columns.len()],
                gradient_column: None,
                columns,
                z: None,
            }
        });
        Observed {
            correction,
            gradient: self.combined.as_ref(),
        }
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.gradients.bytes(be)
            + if self.combined.is_some() {
                be.matrix_bytes(1)
            } else {
                0
            }
    }

    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        self.gradients.save(be, enc, "gradients");
        enc.put("losses", &[self.losses.len()], &self.losses);
        enc.put_u64("since_correction", self.since_correction as u64);
        self.loss.save(enc);
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.gradients.load(be, dec, "gradients")?;
        self.losses = dec.get_shaped::<f64>("losses", &[self.gradients.len()])?;
        self.since_correction =
            usize::try_from(dec.get_u64("since_correction")?).unwrap_or(usize::MAX);
        if self.since_correction > self.gradients.len() {
            return Err(Error::new(
                Status::LRE_ERR_STATE,
                "unrolled_gauss_newton: inconsistent history",
            ));
        }
        self.loss.load(dec)?;
        Ok(())
    }
}
