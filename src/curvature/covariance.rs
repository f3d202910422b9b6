//! Covariance (ALGORITHM.md §2.2): every gradient seen since the last correction is a column,
//! α = 1. With update_freq = f the correction has the f gradients of the last f steps.

use super::Curvature;
use crate::backend::Backend;
use crate::basis::Correction;
use crate::error::Result;
use crate::state::{Decoder, Encoder};

pub struct Covariance<B: Backend> {
    /// Copies of the gradients of non-update steps since the last correction (first `pending`
    /// entries); grows to update_freq − 1 buffers, which are then reused.
    pool: Vec<B::Vector>,
    pending: usize,
}

impl<B: Backend> Covariance<B> {
    pub fn new() -> Self {
        Covariance {
            pool: Vec::new(),
            pending: 0,
        }
    }

    /// Grows the pool to hold `count` gradients.
    fn reserve(&mut self, be: &B, count: usize) -> Result<()> {
        while self.pool.len() < count {
            self.pool.push(be.vector()?);
        }
        Ok(())
    }
}

impl<B: Backend> Default for Covariance<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Curvature<B> for Covariance<B> {
    fn num_probes(&self) -> usize {
        0
    }

    fn prepare(&mut self, be: &B, update: bool) -> Result<usize> {
        if update {
            return Ok(self.pending + 1);
        }
        self.reserve(be, self.pending + 1)?;
        Ok(0)
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

    /// The gradients held since the last correction, oldest first.
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        enc.put_rows::<B::Elem>("pending", self.pending, be.ndim(), |i, out| {
            be.vector_to_host(&self.pool[i], out)
        });
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        let held = dec.shape("pending").map_or(0, |shape| shape[0]);
        self.reserve(be, held)?;
        let pool = &mut self.pool;
        dec.get_rows::<B::Elem>("pending", be.ndim(), |i, data| {
            be.vector_from_host(data, &mut pool[i])
        })?;
        self.pending = held;
        Ok(())
    }
}
