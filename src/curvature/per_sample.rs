//! Per-sample curvatures (docs/algorithm.md §2.4, §2.5), fed by the batch step: the per-sample
//! gradients (rows of the Jacobian J) are the correction columns, α = 1.
//! * EmpiricalFisher: the step's gradient is Jᵀ1 (the sum of the per-sample gradients).
//! * GaussNewton: the per-sample values are residuals r and the gradient is Jᵀr, the gradient
//!   of ½‖r‖² on every step (§7 item 16 fix: no factor 2 on non-update steps).

use super::{Curvature, Observation, Observed, Requirements};
use crate::backend::Backend;
use super::Approximation;
use crate::correction::Correction;
use crate::error::Result;
use crate::state::{Decoder, Encoder};
use std::marker::PhantomData;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::Declared;
use crate::component::Component;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 2] = [
    ComponentSpec {
        name: "empirical_fisher",
        params: &[],
        summary: "per-sample gradients as correction columns (batch step)",
    },
    ComponentSpec {
        name: "gauss_newton",
        params: &[],
        summary: "per-residual gradients (Jacobian rows) as correction columns; gradient Jᵀr (batch step)",
    },
];

pub fn build<B: Backend + 'static>(c: &Component, _symmetrize: bool) -> Result<Box<dyn Curvature<B>>> {
    Ok(Box::new(match c.name() {
        "empirical_fisher" => PerSample::<B>::fisher(),
        _ => PerSample::<B>::gauss_newton(),
    }))
}

/// Stateless; a correction has one column per sample of the batch.
pub fn state(_c: &Component, _dims: &Dims) -> Declared {
    Declared {
        layout: Layout::new(),
        columns: None,
        paired: false,
    }
}

pub struct PerSample<B> {
    /// Gauss-Newton (residual-weighted gradient) rather than empirical Fisher.
    residuals: bool,
    backend: PhantomData<B>,
}

impl<B: Backend> PerSample<B> {
    pub fn fisher() -> Self {
        PerSample {
            residuals: false,
            backend: PhantomData,
        }
    }

    pub fn gauss_newton() -> Self {
        PerSample {
            residuals: true,
            backend: PhantomData,
        }
    }
}

impl<B: Backend> Curvature<B> for PerSample<B> {
    fn requirements(&self) -> Requirements {
        Requirements {
            samples: true,
            values: self.residuals,
            ..Requirements::default()
        }
    }

    fn batch_gradient(
        &self,
        be: &B,
        samples: &[B::Vector],
        values: Option<&[f64]>,
        out: &mut B::Vector,
    ) {
        be.scale(0.0, out);
        for (i, s) in samples.iter().enumerate() {
            let weight = match (self.residuals, values) {
                (true, Some(r)) => r[i],
                _ => 1.0,
            };
            be.axpy(weight, s, out);
        }
    }

    fn prepare(&mut self, _be: &B, update: bool, batch: usize) -> Result<usize> {
        Ok(if update { batch } else { 0 })
    }

    fn observe<'a>(
        &'a mut self,
        _be: &B,
        obs: &Observation<'a, B::Vector>,
        _approx: &mut dyn Approximation<B>,
    ) -> Observed<'a, B::Vector> {
        if !obs.update || obs.samples.is_empty() {
            return Observed::nothing();
        }
        let columns: Vec<&B::Vector> = obs.samples.iter().collect();
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

    fn state_bytes(&self, _be: &B) -> usize {
        0
    }

    fn save(&self, _be: &B, _enc: &mut Encoder<'_>) {}

    fn load(&mut self, _be: &B, _dec: &mut Decoder<'_>) -> Result<()> {
        Ok(())
    }
}
