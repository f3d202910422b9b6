//! Covariance (docs/algorithm.md §2.2): every gradient seen since the last correction is a column,
//! α = 1. With update_freq = f the correction has the f gradients of the last f steps.

use super::history::History;
use super::{Curvature, Observation, Observed, Requirements};
use crate::backend::Backend;
use super::Approximation;
use crate::correction::Correction;
use crate::error::Result;
use crate::state::{Decoder, Encoder};
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::Declared;
use crate::component::Component;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "covariance",
        params: &[],
        summary: "gradient covariance: each gradient is a correction column",
    },
];

pub fn build<B: Backend + 'static>(_c: &Component, _symmetrize: bool) -> Result<Box<dyn Curvature<B>>> {
    Ok(Box::new(Covariance::<B>::new()))
}

/// The gradients held since the last correction; a correction has update_freq columns.
pub fn state(_c: &Component, dims: &Dims) -> Declared {
    Declared::columns(
        Layout::new().vectors("pending", dims.update_freq.saturating_sub(1) as u128),
        dims.update_freq,
    )
}

pub struct Covariance<B: Backend> {
    /// Gradients of the non-update steps since the last correction.
    pending: History<B::Vector>,
}

impl<B: Backend> Covariance<B> {
    pub fn new() -> Self {
        Covariance {
            pending: History::default(),
        }
    }
}

impl<B: Backend> Default for Covariance<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Curvature<B> for Covariance<B> {
    fn requirements(&self) -> Requirements {
        Requirements::default()
    }

    fn prepare(&mut self, be: &B, update: bool, _batch: usize) -> Result<usize> {
        if update {
            return Ok(self.pending.len() + 1);
        }
        self.pending.reserve(be, self.pending.len() + 1)?;
        Ok(0)
    }

    fn observe<'a>(
        &'a mut self,
        be: &B,
        obs: &Observation<'a, B::Vector>,
        _approx: &mut dyn Approximation<B>,
    ) -> Observed<'a, B::Vector> {
        if !obs.update {
            self.pending.push(be, obs.grad, 1.0);
            return Observed::nothing();
        }
        let columns: Vec<&B::Vector> = self.pending.take().iter().chain([obs.grad]).collect();
        Observed {
            correction: Some(Correction {
                alpha: vec![1.0; columns.len()],
                gradient_column: Some(columns.len() - 1),
                columns,
                z: None,
            }),
            gradient: None,
        }
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.pending.bytes(be)
    }

    /// The gradients held since the last correction, oldest first.
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        self.pending.save(be, enc, "pending");
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.pending.load(be, dec, "pending")
    }
}
