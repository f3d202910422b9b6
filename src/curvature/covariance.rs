//! Covariance (ALGORITHM.md §2.2): every gradient seen since the last correction is a column,
//! α = 1. With update_freq = f the correction has the f gradients of the last f steps.

use super::Curvature;
use crate::backend::Backend;
use crate::basis::Correction;
use crate::error::Result;

pub struct Covariance<B: Backend> {
    /// Copies of the gradients of non-update steps since the last correction (first `pending`
    /// entries). update_freq − 1 buffers, allocated up front so a step never allocates.
    pool: Vec<B::Vector>,
    pending: usize,
}

impl<B: Backend> Covariance<B> {
    pub fn new(be: &B, update_freq: u64) -> Result<Self> {
        let held = usize::try_from(update_freq.saturating_sub(1)).unwrap_or(usize::MAX);
        let pool = (0..held).map(|_| be.vector()).collect::<Result<Vec<_>>>()?;
        Ok(Covariance { pool, pending: 0 })
    }
}

impl<B: Backend> Curvature<B> for Covariance<B> {
    fn num_probes(&self) -> usize {
        0
    }

    fn observe<'a>(
        &'a mut self,
        be: &B,
        g: &'a B::Vector,
        update: bool,
    ) -> Option<Correction<'a, B::Vector>> {
        if !update {
            be.copy(g, &mut self.pool[self.pending]);
            self.pending += 1;
            return None;
        }
        let held = std::mem::take(&mut self.pending);
        let columns: Vec<&B::Vector> = self.pool[..held].iter().chain([g]).collect();
        Some(Correction {
            alpha: vec![1.0; columns.len()],
            gradient_column: Some(columns.len() - 1),
            columns,
            z: None,
        })
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.pool.len() * be.matrix_bytes(1)
    }
}
