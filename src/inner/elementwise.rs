//! The stateless members of docs/algorithm.md §5.7, each a few lines:
//! * clip_norm (max_norm = 1): if ‖u‖ > max_norm, u ← u·max_norm/‖u‖;
//! * clip_value (max_value = 0.2): clamp every entry to [−max_value, max_value];
//! * copy_grad_sign: |u| with the sign of ĝ (copysign: a −0 in ĝ gives −|u|);
//! * sign: sign(u), with sign(0) = 0;
//! * normalize: u / max(‖u‖, 2·tiny);
//! * nan_to_zero: NaN, +∞ and −∞ become 0.
//!
//! All of them commute with flipping the signs of basis vectors.

use super::reproject::norm;
use super::{Context, Inner, SAFE_FLOOR};
use crate::rng::Rng;
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use crate::component::{Component, Range, float};
use crate::error::Result;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 6] = [
    ComponentSpec {
        name: "clip_norm",
        params: &[float(
            "max_norm",
            1.0,
            Range::POSITIVE,
            "largest allowed norm",
        )],
        summary: "scale the update down to max_norm",
    },
    ComponentSpec {
        name: "clip_value",
        params: &[float(
            "max_value",
            0.2,
            Range::POSITIVE,
            "largest allowed |entry|",
        )],
        summary: "clamp every entry to [-max_value, max_value]",
    },
    ComponentSpec {
        name: "copy_grad_sign",
        params: &[],
        summary: "|u| with the sign of ĝ",
    },
    ComponentSpec {
        name: "sign",
        params: &[],
        summary: "sign(u)",
    },
    ComponentSpec {
        name: "normalize",
        params: &[],
        summary: "u / ‖u‖",
    },
    ComponentSpec {
        name: "nan_to_zero",
        params: &[],
        summary: "replace NaN and ±Inf by 0",
    },
];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(match c.name() {
        "clip_norm" => Elementwise::ClipNorm {
            max_norm: c.f64("max_norm"),
        },
        "clip_value" => Elementwise::ClipValue {
            max_value: c.f64("max_value"),
        },
        "copy_grad_sign" => Elementwise::CopyGradSign,
        "sign" => Elementwise::Sign,
        "normalize" => Elementwise::Normalize,
        _ => Elementwise::NanToZero,
    }))
}

/// Stateless.
pub fn state(_c: &Component, _dims: &Dims) -> Layout {
    Layout::new()
}

pub enum Elementwise {
    ClipNorm { max_norm: f64 },
    ClipValue { max_value: f64 },
    CopyGradSign,
    Sign,
    Normalize,
    NanToZero,
}

/// sign(x) ∈ {−1, 0, +1} (NaN stays NaN); unlike `f64::signum`, sign(0) = 0.
pub fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

impl Inner for Elementwise {
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, _rng: &mut Rng) {
        match *self {
            Elementwise::ClipNorm { max_norm } => {
                let len = norm(u);
                if len > max_norm {
                    u.iter_mut().for_each(|x| *x = *x * max_norm / len);
                }
            }
            Elementwise::ClipValue { max_value } => u
                .iter_mut()
                .for_each(|x| *x = x.clamp(-max_value, max_value)),
            Elementwise::CopyGradSign => u
                .iter_mut()
                .zip(ctx.grad)
                .for_each(|(x, g)| *x = x.copysign(*g)),
            Elementwise::Sign => u.iter_mut().for_each(|x| *x = sign(*x)),
            Elementwise::Normalize => {
                let len = norm(u).max(SAFE_FLOOR);
                u.iter_mut().for_each(|x| *x /= len);
            }
            Elementwise::NanToZero => u.iter_mut().for_each(|x| {
                if !x.is_finite() {
                    *x = 0.0;
                }
            }),
        }
    }

    fn reproject(&mut self, _c: &Mat<f64>, _rng: &mut Rng) {}
}
