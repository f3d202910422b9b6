//! Adam in the basis (docs/algorithm.md §5.3). Defaults β1 = 0.9, β2 = 0.99 (not 0.999), ε = 1e-8.
//!
//! m ← β1·m + (1−β1)·u; v ← β2·v + (1−β2)·u∘²; with AMSGrad v_max ← max(β_a·v_max, v);
//! û = m̂ / (√v̂ + ε) with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t); t counts steps from 1.
//! Reprojection: m ← C·m, v ← (C∘C)·v, v_max ← (C∘C)·v_max.

use super::reproject::{first_moment, second_moment};
use super::{Context, Inner};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::{AMSGRAD, BETA1, BETA2, eps};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "adam",
        params: &[BETA1, BETA2, eps(1e-8), AMSGRAD],
        summary: "Adam in the basis (diagonal moments reprojected exactly)",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(Adam::new(c)))
}

/// t, the moments m and v, and v_max with AMSGrad.
pub fn state(c: &Component, dims: &Dims) -> Layout {
    let k = dims.rank as u128;
    let layout = Layout::new().u64s("t", 1u8).f64s("m", k).f64s("v", k);
    match c.opt_f64("amsgrad_beta") {
        Some(_) => layout.f64s("v_max", k),
        None => layout,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub v_max: Option<Vec<f64>>,
    /// Steps taken so far (the next step is t + 1).
    pub t: u64,
}

pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    amsgrad_beta: Option<f64>,
    pub state: Option<AdamState>,
}

impl Adam {
    pub fn new(c: &Component) -> Self {
        Adam {
            beta1: c.f64("beta1"),
            beta2: c.f64("beta2"),
            eps: c.f64("eps"),
            amsgrad_beta: c.opt_f64("amsgrad_beta"),
            state: None,
        }
    }
}

impl Inner for Adam {
    fn step(&mut self, u: &mut Vec<f64>, _ctx: &Context<'_>, _rng: &mut Rng) {
        let k = u.len();
        let s = self.state.get_or_insert_with(|| AdamState {
            m: vec![0.0; k],
            v: vec![0.0; k],
            v_max: self.amsgrad_beta.map(|_| vec![0.0; k]),
            t: 0,
        });
        s.t += 1;
        let bias1 = 1.0 - self.beta1.powf(s.t as f64);
        let bias2 = 1.0 - self.beta2.powf(s.t as f64);
        for i in 0..k {
            s.m[i] = self.beta1 * s.m[i] + (1.0 - self.beta1) * u[i];
            s.v[i] = self.beta2 * s.v[i] + (1.0 - self.beta2) * u[i] * u[i];
            let v = match (&mut s.v_max, self.amsgrad_beta) {
                (Some(v_max), Some(decay)) => {
                    v_max[i] = (decay * v_max[i]).max(s.v[i]);
                    v_max[i]
                }
                _ => s.v[i],
            };
            u[i] = (s.m[i] / bias1) / ((v / bias2).sqrt() + self.eps);
        }
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(s) = &self.state {
            enc.put_u64("t", s.t);
            enc.put("m", &[s.m.len()], &s.m);
            enc.put("v", &[s.v.len()], &s.v);
            if let Some(v_max) = &s.v_max {
                enc.put("v_max", &[v_max.len()], v_max);
            }
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        if !dec.has("t") {
            self.state = None;
            return Ok(());
        }
        let t = dec.get_u64("t")?;
        let (m, shape) = dec.get::<f64>("m")?;
        let v = dec.get_shaped::<f64>("v", &shape)?;
        let v_max = match self.amsgrad_beta {
            Some(_) => Some(dec.get_shaped::<f64>("v_max", &shape)?),
            None => None,
        };
        self.state = Some(AdamState { m, v, v_max, t });
        Ok(())
    }

    fn reproject(&mut self, c: &Mat<f64>, _rng: &mut Rng) {
        if let Some(s) = &mut self.state {
            s.m = first_moment(c, &s.m);
            s.v = second_moment(c, &s.v);
            if let Some(v_max) = &mut s.v_max {
                *v_max = second_moment(c, v_max);
            }
        }
    }
}
