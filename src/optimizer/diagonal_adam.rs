//! Diagonal Adam on n-sized host f64 vectors: the elementwise step that the `diagonal` and
//! `warmup` options pair with the low-rank step (complement.rs, graft.rs, warmup.rs).
//!
//! m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g∘²; d = m̂ / (√v̂ + ε) with the bias corrections of
//! the `adam` component and its defaults (β1 = 0.9, β2 = 0.99, ε = 1e-8).

use crate::backend::Backend;
use crate::error::Result;
use crate::state::layout::Layout;
use crate::state::{Decoder, Encoder};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.99;
const EPS: f64 = 1e-8;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiagonalAdam {
    /// Steps taken (the next is t + 1).
    t: u64,
    m: Vec<f64>,
    v: Vec<f64>,
}

/// Its buffers for `n` rows.
pub fn state(n: usize) -> Layout {
    Layout::new()
        .u64s("t", 1u8)
        .f64s("m", n as u128)
        .f64s("v", n as u128)
}

impl DiagonalAdam {
    /// Advances the moments with `g` and writes the step d (to be subtracted, times lr) to `out`.
    pub fn step(&mut self, g: &[f64], out: &mut Vec<f64>) {
        if self.m.len() != g.len() {
            self.m = vec![0.0; g.len()];
            self.v = vec![0.0; g.len()];
        }
        self.t += 1;
        let bias1 = 1.0 - BETA1.powf(self.t as f64);
        let bias2 = 1.0 - BETA2.powf(self.t as f64);
        out.clear();
        for ((m, v), g) in self.m.iter_mut().zip(&mut self.v).zip(g) {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            out.push((*m / bias1) / ((*v / bias2).sqrt() + EPS));
        }
    }

    pub fn save(&self, enc: &mut Encoder<'_>) {
        if self.t > 0 {
            enc.put_u64("t", self.t);
            enc.put("m", &[self.m.len()], &self.m);
            enc.put("v", &[self.v.len()], &self.v);
        }
    }

    pub fn load(dec: &mut Decoder<'_>) -> Result<Self> {
        if !dec.has("t") {
            return Ok(DiagonalAdam::default());
        }
        let t = dec.get_u64("t")?;
        let (m, shape) = dec.get::<f64>("m")?;
        let v = dec.get_shaped::<f64>("v", &shape)?;
        Ok(DiagonalAdam { t, m, v })
    }
}

/// n-sized scratch of the diagonal step (not state).
pub struct Work<B: Backend> {
    pub vector: B::Vector,
    pub host: Vec<f64>,
    pub step: Vec<f64>,
}

impl<B: Backend> Work<B> {
    pub fn new(be: &B) -> Result<Self> {
        Ok(Work {
            vector: be.vector()?,
            host: vec![0.0; be.ndim()],
            step: Vec::new(),
        })
    }
}

/// params ← params + α·d (d is scaled in place).
pub fn add_scaled<B: Backend>(be: &B, d: &mut [f64], alpha: f64, params: B::InOut<'_>) {
    d.iter_mut().for_each(|x| *x *= alpha);
    be.add_host(params, d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_steps_follow_the_formula() {
        let mut adam = DiagonalAdam::default();
        let mut d = Vec::new();
        // Step 1: m̂ = g, v̂ = g², so d = g / (|g| + ε).
        adam.step(&[2.0, -0.5, 0.0], &mut d);
        assert!((d[0] - 2.0 / (2.0 + EPS)).abs() < 1e-15);
        assert!((d[1] + 0.5 / (0.5 + EPS)).abs() < 1e-15);
        assert_eq!(d[2], 0.0);
        // Step 2 with g = (1, 1, 1).
        adam.step(&[1.0, 1.0, 1.0], &mut d);
        for (i, g1) in [2.0f64, -0.5, 0.0].iter().enumerate() {
            let m = BETA1 * (1.0 - BETA1) * g1 + (1.0 - BETA1);
            let v = BETA2 * (1.0 - BETA2) * g1 * g1 + (1.0 - BETA2);
            let want = (m / (1.0 - BETA1 * BETA1)) / ((v / (1.0 - BETA2 * BETA2)).sqrt() + EPS);
            assert!((d[i] - want).abs() < 1e-14, "entry {i}: {} vs {want}", d[i]);
        }
    }
}
