//! CovarianceTimesLoss (docs/algorithm.md §2.3, experimental): the columns are y_s = g_s·ℓ̂_s, with
//! ℓ̂ = ℓ − min(previous losses) when `adaptive` (the raw loss on the first step). The step
//! itself uses the plain gradient. Needs the loss of every step (`set_loss`).

use super::adaptive_loss::AdaptiveLoss;
use super::history::History;
use super::{Curvature, Observation, Observed, Requirements};
use crate::backend::Backend;
use super::Approximation;
use crate::correction::Correction;
use crate::component::Component;
use crate::error::Result;
use crate::state::{Decoder, Encoder};
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::Declared;
use crate::component::boolean;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "covariance_times_loss",
        params: &[boolean(
            "adaptive",
            true,
            "subtract the minimum previous loss",
        )],
        summary: "experimental: gradients scaled by the loss (needs the loss)",
    },
];

pub fn build<B: Backend + 'static>(c: &Component, _symmetrize: bool) -> Result<Box<dyn Curvature<B>>> {
    Ok(Box::new(CovarianceTimesLoss::<B>::new(c)))
}

/// The scaled gradients held since the last correction and the minimum loss.
pub fn state(_c: &Component, dims: &Dims) -> Declared {
    let layout = Layout::new()
        .vectors("scaled", dims.update_freq.saturating_sub(1) as u128)
        .f64s("min_loss", 1u8);
    Declared::columns(layout, dims.update_freq)
}

pub struct CovarianceTimesLoss<B: Backend> {
    /// Scaled gradients since the last correction (this step's included on update steps).
    scaled: History<B::Vector>,
    loss: AdaptiveLoss,
}

impl<B: Backend> CovarianceTimesLoss<B> {
    pub fn new(c: &Component) -> Self {
        CovarianceTimesLoss {
            scaled: History::default(),
            loss: AdaptiveLoss::new(c.bool("adaptive")),
        }
    }
}

impl<B: Backend> Curvature<B> for CovarianceTimesLoss<B> {
    fn requirements(&self) -> Requirements {
        Requirements {
            loss: true,
            ..Requirements::default()
        }
    }

    fn prepare(&mut self, be: &B, update: bool, _batch: usize) -> Result<usize> {
        self.scaled.reserve(be, self.scaled.len() + 1)?;
        Ok(if update { self.scaled.len() + 1 } else { 0 })
    }

    fn observe<'a>(
        &'a mut self,
        be: &B,
        obs: &Observation<'a, B::Vector>,
        _approx: &mut dyn Approximation<B>,
    ) -> Observed<'a, B::Vector> {
        let loss = obs
            .loss
            .expect("the optimizer checks that the loss was set");
        let factor = self.loss.next(loss);
        self.scaled.push(be, obs.grad, factor);
        if !obs.update {
            return Observed::nothing();
        }
        let columns: Vec<&B::Vector> = self.scaled.take().iter().collect();
        Observed {
            correction: Some(Correction {
                alpha: vec![1.0; columns.len()],
                gradient_column: None,
                columns,
                z: None,
            }),
            gradient: None,
        }
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.scaled.bytes(be)
    }

    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        self.scaled.save(be, enc, "scaled");
        self.loss.save(enc);
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.scaled.load(be, dec, "scaled")?;
        self.loss.load(dec)?;
        Ok(())
    }
}
