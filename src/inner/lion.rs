//! Lion (docs/algorithm.md §5.9): the sign of an interpolated momentum. Defaults β1 = 0.9,
//! β2 = 0.99, cautious = false.
//!
//! Uses ĝ and ignores the incoming update u: û = sign(β1·m + (1−β1)·ĝ), then
//! m ← β2·m + (1−β2)·ĝ (m starts at 0); cautious zeroes the entries where ĝ∘û ≤ 0.
//! Reprojection m ← C·m.

use super::elementwise::sign;
use super::reproject::first_moment;
use super::{Context, Inner};
use crate::component::Component;
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::{BETA1, BETA2};
use crate::component::boolean;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "lion",
        params: &[
            BETA1,
            BETA2,
            boolean("cautious", false, "zero entries that disagree with ĝ"),
        ],
        summary: "Lion (sign of interpolated momentum)",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(Lion::new(c)))
}

/// The momentum m.
pub fn state(_c: &Component, dims: &Dims) -> Layout {
    Layout::new().f64s("m", dims.rank as u128)
}

pub struct Lion {
    beta1: f64,
    beta2: f64,
    cautious: bool,
    pub state: Option<Vec<f64>>,
}

impl Lion {
    pub fn new(c: &Component) -> Self {
        Lion {
            beta1: c.f64("beta1"),
            beta2: c.f64("beta2"),
            cautious: c.bool("cautious"),
            state: None,
        }
    }
}

impl Inner for Lion {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        let m = self.state.get_or_insert_with(|| vec![0.0; ctx.grad.len()]);
        u.clear();
        for (mi, g) in m.iter_mut().zip(ctx.grad) {
            let mut direction = sign(self.beta1 * *mi + (1.0 - self.beta1) * g);
            if self.cautious && g * direction <= 0.0 {
                direction = 0.0;
            }
            u.push(direction);
            *mi = self.beta2 * *mi + (1.0 - self.beta2) * g;
        }
    }

    fn reproject(&mut self, c: &Mat<f64>, _rng: &mut Rng) {
        if let Some(m) = &mut self.state {
            *m = first_moment(c, m);
        }
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(m) = &self.state {
            enc.put("m", &[m.len()], m);
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        self.state = if dec.has("m") {
            Some(dec.get::<f64>("m")?.0)
        } else {
            None
        };
        Ok(())
    }
}
