//! CubicAdam (docs/algorithm.md §5.10): diagonal Adam that also keeps third moments and minimizes a
//! cubic model per coordinate. Defaults β1 = 0.9, β2 = β3 = 0.99, ε = 1e-8.
//!
//! m1 ← β1·m1 + (1−β1)·u, m2 ← β2·m2 + (1−β2)·u∘², m3 ← β3·m3 + (1−β3)·u∘³, each debiased by
//! 1/(1−β_i^t). Per coordinate, with A = sign(m3)·|m3|^{1/3}, B = √m2, c = m1, minimize
//! f(x) = (A/3)x³ + (B/2)x² + c·x: f'(x) = A·x² + B·x + c, discriminant D = B² − 4A·c.
//! The local minimum is x0 = (−B + √D)/(2A) (f''(x0) = √D ≥ 0; the reference compares f at both
//! roots and always picks it), evaluated in the cancellation-free form x0 = −2c/(B + √D)
//! (§7 item 12). |A| < ε and D < 0 (no stationary point) use the Adam step x = −c/(B + ε).
//! û = −x*, so the parameter step moves by +lr·Q·x*.
//! Reprojection: m1 ← C·m1, m2 ← (C∘C)·m2, m3 ← (C∘C∘C)·m3 (never the O(k⁴) tensor).

use super::reproject::{first_moment, second_moment, third_moment};
use super::{Context, Inner};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::{BETA1, BETA2, eps};
use crate::component::{Range, float};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "cubic_adam",
        params: &[
            BETA1,
            BETA2,
            float("beta3", 0.99, Range::BETA, "third-moment decay"),
            eps(1e-8),
        ],
        summary: "Adam with a cubic model per coordinate",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(CubicAdam::new(c)))
}

/// t and the three moments.
pub fn state(_c: &Component, dims: &Dims) -> Layout {
    let k = dims.rank as u128;
    Layout::new()
        .u64s("t", 1u8)
        .f64s("m1", k)
        .f64s("m2", k)
        .f64s("m3", k)
}

#[derive(Clone, Debug, PartialEq)]
pub struct CubicAdamState {
    pub m1: Vec<f64>,
    pub m2: Vec<f64>,
    pub m3: Vec<f64>,
    /// Steps taken so far.
    pub t: u64,
}

pub struct CubicAdam {
    beta1: f64,
    beta2: f64,
    beta3: f64,
    eps: f64,
    pub state: Option<CubicAdamState>,
}

impl CubicAdam {
    pub fn new(c: &Component) -> Self {
        CubicAdam {
            beta1: c.f64("beta1"),
            beta2: c.f64("beta2"),
            beta3: c.f64("beta3"),
            eps: c.f64("eps"),
            state: None,
        }
    }
}

/// The minimizer x* of (A/3)x³ + (B/2)x² + c·x described in the module doc (B ≥ 0).
pub fn cubic_step(a: f64, b: f64, c: f64, eps: f64) -> f64 {
    let discriminant = b * b - 4.0 * a * c;
    if a.abs() < eps || discriminant < 0.0 {
        return -c / (b + eps);
    }
    let denominator = b + discriminant.sqrt();
    // B = 0 and D = 0 with |A| ≥ ε force c = 0: f = (A/3)x³ is flat at 0.
    if denominator > 0.0 {
        -2.0 * c / denominator
    } else {
        0.0
    }
}

impl Inner for CubicAdam {
    fn step(&mut self, u: &mut Vec<f64>, _ctx: &Context<'_>, _rng: &mut Rng) {
        let k = u.len();
        let s = self.state.get_or_insert_with(|| CubicAdamState {
            m1: vec![0.0; k],
            m2: vec![0.0; k],
            m3: vec![0.0; k],
            t: 0,
        });
        s.t += 1;
        let t = s.t as f64;
        let (bias1, bias2, bias3) = (
            1.0 - self.beta1.powf(t),
            1.0 - self.beta2.powf(t),
            1.0 - self.beta3.powf(t),
        );
        for (i, x) in u.iter_mut().enumerate() {
            s.m1[i] = self.beta1 * s.m1[i] + (1.0 - self.beta1) * *x;
            s.m2[i] = self.beta2 * s.m2[i] + (1.0 - self.beta2) * *x * *x;
            s.m3[i] = self.beta3 * s.m3[i] + (1.0 - self.beta3) * *x * *x * *x;
            let a = (s.m3[i] / bias3).cbrt();
            let b = (s.m2[i] / bias2).sqrt();
            *x = -cubic_step(a, b, s.m1[i] / bias1, self.eps);
        }
    }

    fn reproject(&mut self, c: &Mat<f64>, _rng: &mut Rng) {
        if let Some(s) = &mut self.state {
            s.m1 = first_moment(c, &s.m1);
            s.m2 = second_moment(c, &s.m2);
            s.m3 = third_moment(c, &s.m3);
        }
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(s) = &self.state {
            enc.put_u64("t", s.t);
            enc.put("m1", &[s.m1.len()], &s.m1);
            enc.put("m2", &[s.m2.len()], &s.m2);
            enc.put("m3", &[s.m3.len()], &s.m3);
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        if !dec.has("t") {
            self.state = None;
            return Ok(());
        }
        let t = dec.get_u64("t")?;
        let (m1, shape) = dec.get::<f64>("m1")?;
        let m2 = dec.get_shaped::<f64>("m2", &shape)?;
        let m3 = dec.get_shaped::<f64>("m3", &shape)?;
        self.state = Some(CubicAdamState { m1, m2, m3, t });
        Ok(())
    }
}
