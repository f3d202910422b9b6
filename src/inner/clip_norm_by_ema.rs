//! ClipNormByEMA (docs/algorithm.md §5.6; `normalize_by_ema` = normalize=true).
//!
//! Keeps e, an EMA of updates, and p, the previous allowed norm. Each step: e' = β·e + (1−β)·u,
//! ν = ‖e'‖; with max_growth the allowed norm grows at most ×max_growth per step (floor
//! min_norm); then u is clipped to ν (or, with normalize, rescaled to exactly ν).
//! Fix over the reference (§7 item 13): when reprojection collapses e to ~0, the random
//! replacement direction gets norm min_norm, not ≈√k.

use super::reproject::{first_moment, norm};
use super::{Context, Inner, SAFE_FLOOR};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use crate::component::{Range, boolean, float, opt_float};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "clip_norm_by_ema",
        params: &[
            float("beta", 0.99, Range::BETA, "decay of the EMA of updates"),
            opt_float(
                "max_growth",
                Some(1.2),
                Range::AT_LEAST_ONE,
                "largest growth of the allowed norm per step",
            ),
            boolean(
                "normalize",
                false,
                "rescale to the EMA's norm instead of only clipping",
            ),
            float(
                "min_norm",
                1e-2,
                Range::POSITIVE,
                "floor of the allowed norm",
            ),
            float(
                "init",
                1e-1,
                Range::NON_NEGATIVE,
                "the EMA starts at init × the first update",
            ),
        ],
        summary: "clip (or, normalize=true, rescale) the update to the norm of its EMA",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(ClipNormByEma::new(c)))
}

/// The EMA of updates and the previous allowed norm.
pub fn state(_c: &Component, dims: &Dims) -> Layout {
    Layout::new()
        .f64s("ema", dims.rank as u128)
        .f64s("previous_norm", 1u8)
}

pub struct ClipNormByEma {
    beta: f64,
    max_growth: Option<f64>,
    normalize: bool,
    min_norm: f64,
    init: f64,
    /// The EMA of updates (unset before the first step).
    pub ema: Option<Vec<f64>>,
    /// The previous allowed norm (unset until the growth limit or a reprojection sets it).
    pub previous_norm: Option<f64>,
}

impl ClipNormByEma {
    pub fn new(c: &Component) -> Self {
        ClipNormByEma {
            beta: c.f64("beta"),
            max_growth: c.opt_f64("max_growth"),
            normalize: c.bool("normalize"),
            min_norm: c.f64("min_norm"),
            init: c.f64("init"),
            ema: None,
            previous_norm: None,
        }
    }
}

impl Inner for ClipNormByEma {
    fn step(&mut self, u: &mut Vec<f64>, _ctx: &Context<'_>, _rng: &mut Rng) {
        let ema = self
            .ema
            .get_or_insert_with(|| u.iter().map(|x| self.init * x).collect());
        let mut next: Vec<f64> = ema
            .iter()
            .zip(u.iter())
            .map(|(e, x)| self.beta * e + (1.0 - self.beta) * x)
            .collect();
        let mut nu = norm(&next);
        if let (Some(growth), Some(p)) = (self.max_growth, self.previous_norm) {
            let allowed = (p * growth).max(self.min_norm);
            let f = (nu / allowed).max(1.0);
            next.iter_mut().for_each(|e| *e /= f);
            nu /= f;
            self.previous_norm = Some(nu);
        }
        let d = norm(u) / nu.max(SAFE_FLOOR);
        let d = if self.normalize {
            d.max(SAFE_FLOOR)
        } else {
            d.max(1.0)
        };
        *ema = next;
        u.iter_mut().for_each(|x| *x /= d);
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(e) = &self.ema {
            enc.put("ema", &[e.len()], e);
        }
        if let Some(p) = self.previous_norm {
            enc.put("previous_norm", &[], &[p]);
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        self.ema = if dec.has("ema") {
            Some(dec.get::<f64>("ema")?.0)
        } else {
            None
        };
        self.previous_norm = if dec.has("previous_norm") {
            Some(dec.get_shaped::<f64>("previous_norm", &[])?[0])
        } else {
            None
        };
        Ok(())
    }

    fn reproject(&mut self, c: &Mat<f64>, rng: &mut Rng) {
        let Some(ema) = &mut self.ema else { return };
        *ema = first_moment(c, ema);
        let mut p = norm(ema);
        if p < SAFE_FLOOR {
            // Collapsed: restart from a random direction of norm min_norm (fix of §7 item 13).
            let fresh = rng.gaussian_vec(ema.len());
            let len = norm(&fresh);
            if len > 0.0 {
                *ema = fresh.iter().map(|x| x * self.min_norm / len).collect();
            }
            p = self.min_norm;
        } else if p < self.min_norm {
            ema.iter_mut().for_each(|x| *x *= self.min_norm / p);
            p = self.min_norm;
        }
        self.previous_norm = Some(p);
    }
}
