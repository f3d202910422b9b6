//! n-vectors a curvature keeps between steps (the gradients since the last correction), in a
//! pool of buffers that is reused rather than reallocated.

use crate::backend::Backend;
use crate::basis::store::{adopt_vectors, get_vectors, put_vectors};
use crate::error::Result;
use crate::state::{Decoder, Encoder};

pub struct History<V> {
    pool: Vec<V>,
    len: usize,
}

impl<V> Default for History<V> {
    fn default() -> Self {
        History {
            pool: Vec::new(),
            len: 0,
        }
    }
}

impl<V> History<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The held vectors, oldest first.
    pub fn items(&self) -> &[V] {
        &self.pool[..self.len]
    }

    /// Grows the pool so it can hold `count` vectors.
    pub fn reserve<B: Backend<Vector = V>>(&mut self, be: &B, count: usize) -> Result<()> {
        while self.pool.len() < count {
            self.pool.push(be.vector()?);
        }
        Ok(())
    }

    /// Appends scale·v (the slot must have been reserved).
    pub fn push<B: Backend<Vector = V>>(&mut self, be: &B, v: &V, scale: f64) {
        let slot = &mut self.pool[self.len];
        be.copy(v, slot);
        if scale != 1.0 {
            be.scale(scale, slot);
        }
        self.len += 1;
    }

    /// Empties the history and returns what it held (the buffers stay for reuse).
    pub fn take(&mut self) -> &[V] {
        let held = std::mem::take(&mut self.len);
        &self.pool[..held]
    }

    /// Keeps only the newest `keep` vectors.
    pub fn keep_newest(&mut self, keep: usize) {
        let drop = self.len.saturating_sub(keep);
        self.pool[..self.len].rotate_left(drop);
        self.len -= drop;
    }

    /// Bytes held.
    pub fn bytes<B: Backend<Vector = V>>(&self, be: &B) -> usize {
        self.pool.len() * be.matrix_bytes(1)
    }

    /// Writes the held vectors as a `[len, n]` buffer.
    pub fn save<B: Backend<Vector = V>>(&self, be: &B, enc: &mut Encoder<'_>, name: &str) {
        let held: Vec<&V> = self.items().iter().collect();
        put_vectors(be, enc, name, &held);
    }

    /// Reads what `save` wrote.
    pub fn load<B: Backend<Vector = V>>(
        &mut self,
        be: &B,
        dec: &mut Decoder<'_>,
        name: &str,
    ) -> Result<()> {
        adopt_vectors(be, dec, name, &mut self.pool)?;
        self.len = get_vectors(be, dec, name, &mut self.pool)?;
        Ok(())
    }
}
