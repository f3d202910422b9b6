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
