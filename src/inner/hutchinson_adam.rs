//! HutchinsonAdam (docs/algorithm.md §5.12): Adam whose second moment is an EMA of Hutchinson
//! estimates of the Hessian diagonal in the basis — AdaHessian (square = true, the default) or
//! SophiaH (square = false). Defaults β1 = 0.9, β2 = 0.99, ε = 1e-8, square = true, zhz = true.
//! Needs Hessian-vector products.
//!
//! Every step: m ← β1·m + (1−β1)·u, t ← t + 1. On steps with a Hessian sample (projected probes
//! z, Hz), N ← N + 1 and d = z∘Hz (zhz) or Hz, averaged over the probes (the reference has one);
//! D ← β2·D + (1−β2)·d∘² (square) or D ← β2·D + (1−β2)·d; with AMSGrad D_max ← max(β_a·D_max, D)
//! and D_max replaces D below. m̂ = m/(1−β1^t), D̂ = D/(1−β2^N) (debiased by the number of
//! samples); û = m̂/(√D̂ + ε) (square) or m̂/(|D̂| + ε).
//! Before the first sample there is no curvature estimate, so the update is zero (the reference
//! refuses such a step).
//!
//! Reprojection: m ← C·m; a D that is a diagonal estimate (square, or zhz) is reprojected by the
//! exact diagonal rule (C∘C)·D, and so is D_max — §7 item 15: this fixes the reference's typo that
//! wrote C·D_max into D, and replaces its C·D for square = false. With square = zhz = false, D is
//! an EMA of the vector Hz, which changes sign with the basis vectors, so it keeps the vector rule
//! C·D (the reference's rule; (C∘C) would make the update depend on the basis vectors' signs).
//! AMSGrad on that signed vector is the one setting whose update does depend on those signs: a
//! maximum of signed values has no sign symmetry.

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
use crate::component::boolean;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "hutchinson_adam",
        params: &[
            BETA1,
            BETA2,
            eps(1e-8),
            AMSGRAD,
            boolean("square", true, "AdaHessian-style squared estimate"),
            boolean("zhz", true, "use z∘Hz instead of Hz"),
        ],
        summary: "Adam with a Hutchinson diagonal Hessian estimate (SophiaH/AdaHessian)",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(HutchinsonAdam::new(c)))
}

/// t, samples, the moments m and d, and d_max with AMSGrad.
pub fn state(c: &Component, dims: &Dims) -> Layout {
    let k = dims.rank as u128;
    let layout = Layout::new()
        .u64s("t", 1u8)
        .u64s("samples", 1u8)
        .f64s("m", k)
        .f64s("d", k);
    match c.opt_f64("amsgrad_beta") {
        Some(_) => layout.f64s("d_max", k),
        None => layout,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HutchinsonAdamState {
    pub m: Vec<f64>,
    pub d: Vec<f64>,
    /// The AMSGrad maximum (unset until the first sample with AMSGrad on).
    pub d_max: Option<Vec<f64>>,
    /// Steps taken so far.
    pub t: u64,
    /// Steps that had a Hessian sample (N).
    pub samples: u64,
}

pub struct HutchinsonAdam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    amsgrad_beta: Option<f64>,
    square: bool,
    zhz: bool,
    pub state: Option<HutchinsonAdamState>,
}

impl HutchinsonAdam {
    pub fn new(c: &Component) -> Self {
        HutchinsonAdam {
            beta1: c.f64("beta1"),
            beta2: c.f64("beta2"),
            eps: c.f64("eps"),
            amsgrad_beta: c.opt_f64("amsgrad_beta"),
            square: c.bool("square"),
            zhz: c.bool("zhz"),
            state: None,
        }
    }
}

impl Inner for HutchinsonAdam {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        let k = u.len();
        let s = self.state.get_or_insert_with(|| HutchinsonAdamState {
            m: vec![0.0; k],
            d: vec![0.0; k],
            d_max: None,
            t: 0,
            samples: 0,
        });
        s.t += 1;
        for (m, x) in s.m.iter_mut().zip(u.iter()) {
            *m = self.beta1 * *m + (1.0 - self.beta1) * x;
        }
        if let Some(sample) = ctx.hessian_probes() {
            s.samples += 1;
            let weight = 1.0 / sample.z.len() as f64;
            for (i, d) in s.d.iter_mut().enumerate() {
                let estimate: f64 = sample
                    .probes()
                    .map(|(z, hz)| weight * if self.zhz { z[i] * hz[i] } else { hz[i] })
                    .sum();
                let estimate = if self.square {
                    estimate * estimate
                } else {
                    estimate
                };
                *d = self.beta2 * *d + (1.0 - self.beta2) * estimate;
            }
            if let Some(decay) = self.amsgrad_beta {
                let d_max = s.d_max.get_or_insert_with(|| vec![0.0; k]);
                for (mx, d) in d_max.iter_mut().zip(&s.d) {
                    *mx = (decay * *mx).max(*d);
                }
            }
        }
        if s.samples == 0 {
            u.fill(0.0);
            return;
        }
        let bias1 = 1.0 - self.beta1.powf(s.t as f64);
        let bias2 = 1.0 - self.beta2.powf(s.samples as f64);
        let d = s.d_max.as_ref().unwrap_or(&s.d);
        for ((x, m), d) in u.iter_mut().zip(&s.m).zip(d) {
            let d_hat = d / bias2;
            let denominator = if self.square {
                d_hat.sqrt()
            } else {
                d_hat.abs()
            };
            *x = (m / bias1) / (denominator + self.eps);
        }
    }

    fn reproject(&mut self, c: &Mat<f64>, _rng: &mut Rng) {
        // Diagonal estimates by (C∘C), the vector Hz by C (see the module doc).
        let rule: fn(&Mat<f64>, &[f64]) -> Vec<f64> = if self.square || self.zhz {
            second_moment
        } else {
            first_moment
        };
        if let Some(s) = &mut self.state {
            s.m = first_moment(c, &s.m);
            s.d = rule(c, &s.d);
            if let Some(d_max) = &mut s.d_max {
                *d_max = rule(c, d_max);
            }
        }
    }

    fn needs_hessian(&self) -> bool {
        true
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(s) = &self.state {
            enc.put_u64("t", s.t);
            enc.put_u64("samples", s.samples);
            enc.put("m", &[s.m.len()], &s.m);
            enc.put("d", &[s.d.len()], &s.d);
            if let Some(d_max) = &s.d_max {
                enc.put("d_max", &[d_max.len()], d_max);
            }
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        if !dec.has("t") {
            self.state = None;
            return Ok(());
        }
        let t = dec.get_u64("t")?;
        let samples = dec.get_u64("samples")?;
        let (m, shape) = dec.get::<f64>("m")?;
        let d = dec.get_shaped::<f64>("d", &shape)?;
        let d_max = if self.amsgrad_beta.is_some() && dec.has("d_max") {
            Some(dec.get_shaped::<f64>("d_max", &shape)?)
        } else {
            None
        };
        self.state = Some(HutchinsonAdamState {
            m,
            d,
            d_max,
            t,
            samples,
        });
        Ok(())
    }
}
