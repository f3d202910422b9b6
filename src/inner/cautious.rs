//! Cautious (docs/algorithm.md §5.4): û = u ∘ 1[ĝ∘u > 0] — zero where the update disagrees in sign
//! with the projected gradient; no rescaling. Stateless.

use super::{Context, Inner};
use crate::rng::Rng;
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use crate::component::Component;
use crate::error::Result;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "cautious",
        params: &[],
        summary: "zero the entries whose sign disagrees with ĝ",
    },
];

pub fn build(_c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(Cautious))
}

/// Stateless.
pub fn state(_c: &Component, _dims: &Dims) -> Layout {
    Layout::new()
}

pub struct Cautious;

impl Inner for Cautious {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        for (ui, gi) in u.iter_mut().zip(ctx.grad) {
            if *ui * gi <= 0.0 {
                *ui = 0.0;
            }
        }
    }

    fn reproject(&mut self, _c: &Mat<f64>, _rng: &mut Rng) {}
}
