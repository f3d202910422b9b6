//! EMA (docs/algorithm.md §5.5): e ← β·e + (1−β)·u (e starts at 0), returns e; no debiasing.
//! Reprojection e ← C·e.

use super::reproject::first_moment;
use super::{Context, Inner};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use crate::component::{Range, float};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "ema",
        params: &[float("beta", 0.9, Range::BETA, "decay")],
        summary: "exponential moving average of the update (no debiasing)",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(Ema::new(c)))
}

/// The average e.
pub fn state(_c: &Component, dims: &Dims) -> Layout {
    Layout::new().f64s("e", dims.rank as u128)
}

pub struct Ema {
    beta: f64,
    pub state: Option<Vec<f64>>,
}

impl Ema {
    pub fn new(c: &Component) -> Self {
        Ema {
            beta: c.f64("beta"),
            state: None,
        }
    }
}

impl Inner for Ema {
    fn step(&mut self, u: &mut Vec<f64>, _ctx: &Context<'_>, _rng: &mut Rng) {
        let e = self.state.get_or_insert_with(|| vec![0.0; u.len()]);
        for (ei, ui) in e.iter_mut().zip(u.iter_mut()) {
            *ei = self.beta * *ei + (1.0 - self.beta) * *ui;
            *ui = *ei;
        }
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(e) = &self.state {
            enc.put("e", &[e.len()], e);
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        self.state = if dec.has("e") {
            Some(dec.get::<f64>("e")?.0)
        } else {
            None
        };
        Ok(())
    }

    fn reproject(&mut self, c: &Mat<f64>, _rng: &mut Rng) {
        if let Some(e) = &mut self.state {
            *e = first_moment(c, e);
        }
    }
}
