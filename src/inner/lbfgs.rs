//! L-BFGS in the basis: a quasi-Newton step from the last `memory` pairs (s, y) of k-space
//! steps and gradient changes, by the two-loop recursion with the initial scaling
//! γ = sᵀy / yᵀy of the newest pair. It is the chain's last member and assumes a constant lr:
//! the parameters move by −lr·û, so s = −û_prev (the step divided by lr) and y = u − u_prev,
//! where u is what this member receives. The inverse-Hessian estimate H then satisfies
//! H·y = s, so lr·H ≈ (∇²f)⁻¹ after the first pair: the step is the quasi-Newton step
//! whatever the lr, which sets only the length of the first step û = u/‖u‖ (as L-BFGS-B's first
//! trial step). There is no line search; instead ‖û‖ is capped at max_growth times the previous
//! step's norm, a trust region that grows geometrically (it keeps unit quasi-Newton steps from
//! overshooting on non-convex problems such as Rosenbrock's). A pair with sᵀy ≤ tol·‖s‖·‖y‖
//! (negative curvature, or none) is skipped. Reprojection multiplies every stored k-vector by
//! C = Q_newᵀQ_old.

use super::reproject::first_moment;
use super::{Context, Inner};
use crate::component::{Component, ComponentSpec, Range, float, int, opt_float};
use crate::error::Result;
use crate::rng::Rng;
use crate::state::layout::{Dims, Layout};
use crate::state::{Decoder, Encoder};
use faer::Mat;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [ComponentSpec {
    name: "lbfgs",
    params: &[
        int("memory", 10, 1, "(s, y) pairs kept"),
        float(
            "tol",
            1e-8,
            Range::NON_NEGATIVE,
            "skip pairs with sᵀy <= tol·‖s‖·‖y‖",
        ),
        opt_float(
            "max_growth",
            Some(2.0),
            Range::new(1.0, f64::INFINITY, true, false),
            "cap ‖û‖ at this multiple of the previous step's norm; none = no cap",
        ),
    ],
    summary: "L-BFGS two-loop step from (step, gradient change) pairs in the basis (last member)",
}];

pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    Ok(Box::new(Lbfgs::new(
        c.usize("memory"),
        c.f64("tol"),
        c.opt_f64("max_growth"),
    )))
}

/// The previous input and output, and up to `memory` pairs s and y (oldest first).
pub fn state(c: &Component, dims: &Dims) -> Layout {
    let k = dims.rank as u128;
    let pairs = c.usize("memory") as u128 * k;
    Layout::new()
        .f64s("u_prev", k)
        .f64s("step_prev", k)
        .f64s("s", pairs)
        .f64s("y", pairs)
}

/// A stored (s, y).
type Pair = (Vec<f64>, Vec<f64>);

/// What the previous step saw and did.
#[derive(Clone, Debug, PartialEq)]
struct Previous {
    u: Vec<f64>,
    step: Vec<f64>,
}

pub struct Lbfgs {
    memory: usize,
    tol: f64,
    max_growth: Option<f64>,
    previous: Option<Previous>,
    /// (s, y), oldest first.
    pairs: Vec<Pair>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += alpha * xi);
}

impl Lbfgs {
    pub fn new(memory: usize, tol: f64, max_growth: Option<f64>) -> Self {
        Lbfgs {
            memory,
            tol,
            max_growth,
            previous: None,
            pairs: Vec::new(),
        }
    }

    /// Adds the pair from the previous step to `u`, unless it has no positive curvature.
    fn record_pair(&mut self, u: &[f64]) {
        let Some(prev) = &self.previous else {
            return;
        };
        let s: Vec<f64> = prev.step.iter().map(|v| -v).collect();
        let y: Vec<f64> = u.iter().zip(&prev.u).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy.is_finite() && sy > self.tol * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && sy > 0.0 {
            if self.pairs.len() == self.memory {
                self.pairs.remove(0);
            }
            self.pairs.push((s, y));
        }
    }

    /// The step for input `u`: H·u, capped by the trust region; u/‖u‖ without pairs.
    fn step_for(&self, u: &[f64]) -> Vec<f64> {
        let Some(prev) = self.previous.as_ref().filter(|_| !self.pairs.is_empty()) else {
            let norm = dot(u, u).sqrt();
            let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            return u.iter().map(|v| v * scale).collect();
        };
        let mut step = self.apply_inverse(u);
        if let Some(growth) = self.max_growth {
            let (norm, cap) = (
                dot(&step, &step).sqrt(),
                growth * dot(&prev.step, &prev.step).sqrt(),
            );
            if norm > cap {
                step.iter_mut().for_each(|v| *v *= cap / norm);
            }
        }
        step
    }

    /// H·u by the two-loop recursion (u itself without pairs).
    fn apply_inverse(&self, u: &[f64]) -> Vec<f64> {
        let mut q = u.to_vec();
        let mut alphas = Vec::with_capacity(self.pairs.len());
        for (s, y) in self.pairs.iter().rev() {
            let alpha = dot(s, &q) / dot(s, y);
            axpy(-alpha, y, &mut q);
            alphas.push(alpha);
        }
        if let Some((s, y)) = self.pairs.last() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y), alpha) in self.pairs.iter().zip(alphas.iter().rev()) {
            let beta = dot(y, &q) / dot(s, y);
            axpy(alpha - beta, s, &mut q);
        }
        q
    }
}

impl Inner for Lbfgs {
    fn step(&mut self, u: &mut Vec<f64>, _ctx: &Context<'_>, _rng: &mut Rng) {
        self.record_pair(u);
        let step = self.step_for(u);
        self.previous = Some(Previous {
            u: std::mem::replace(u, step.clone()),
            step,
        });
    }

    fn reproject(&mut self, c: &Mat<f64>, _rng: &mut Rng) {
        if let Some(prev) = &mut self.previous {
            prev.u = first_moment(c, &prev.u);
            prev.step = first_moment(c, &prev.step);
        }
        for (s, y) in &mut self.pairs {
            *s = first_moment(c, s);
            *y = first_moment(c, y);
        }
    }

    fn save(&self, enc: &mut Encoder<'_>) {
        let Some(prev) = &self.previous else {
            return;
        };
        let k = prev.u.len();
        enc.put("u_prev", &[k], &prev.u);
        enc.put("step_prev", &[k], &prev.step);
        if !self.pairs.is_empty() {
            let flat = |pick: fn(&Pair) -> &Vec<f64>| -> Vec<f64> {
                self.pairs
                    .iter()
                    .flat_map(|p| pick(p).iter().copied())
                    .collect()
            };
            enc.put("s", &[self.pairs.len(), k], &flat(|p| &p.0));
            enc.put("y", &[self.pairs.len(), k], &flat(|p| &p.1));
        }
    }

    fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        self.previous = None;
        self.pairs.clear();
        if !dec.has("u_prev") {
            return Ok(());
        }
        let (u, shape) = dec.get::<f64>("u_prev")?;
        let step = dec.get_shaped::<f64>("step_prev", &shape)?;
        if dec.has("s") {
            let (s, pair_shape) = dec.get::<f64>("s")?;
            let y = dec.get_shaped::<f64>("y", &pair_shape)?;
            let k = u.len().max(1);
            self.pairs = s
                .chunks(k)
                .zip(y.chunks(k))
                .map(|(s, y)| (s.to_vec(), y.to_vec()))
                .collect();
        }
        self.previous = Some(Previous { u, step });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense BFGS inverse update from H₀ = γI over the pairs, oldest first:
    /// H ← (I − ρ·s·yᵀ)·H·(I − ρ·y·sᵀ) + ρ·s·sᵀ with ρ = 1/sᵀy.
    fn dense_inverse(pairs: &[Pair], k: usize) -> Mat<f64> {
        let (s_new, y_new) = pairs.last().unwrap();
        let gamma = dot(s_new, y_new) / dot(y_new, y_new);
        let mut h = Mat::from_fn(k, k, |i, j| if i == j { gamma } else { 0.0 });
        for (s, y) in pairs {
            let rho = 1.0 / dot(s, y);
            let left = Mat::from_fn(k, k, |i, j| f64::from(i == j) - rho * s[i] * y[j]);
            h = &left * &h * left.transpose() + Mat::from_fn(k, k, |i, j| rho * s[i] * s[j]);
        }
        h
    }

    /// On a quadratic ½xᵀAx with the steps applied at lr: the pairs are secant pairs of A for
    /// the true steps lr·s, the step is the dense BFGS inverse times u, and lr·H·y = lr·s for the
    /// newest pair (H·y = s).
    #[test]
    fn matches_the_dense_bfgs_inverse_on_a_quadratic() {
        let a = [[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]];
        let times_a = |x: &[f64]| -> Vec<f64> { a.iter().map(|row| dot(row, x)).collect() };
        let lr = 0.1;
        let mut inner = Lbfgs::new(10, 1e-8, None);
        let mut rng = Rng::new(1);
        let mut x = vec![1.0, -2.0, 0.5];
        for _ in 0..3 {
            let g = times_a(&x);
            let mut u = g.clone();
            inner.step(&mut u, &Context::new(&g, None), &mut rng);
            axpy(-lr, &u, &mut x);
        }
        assert_eq!(inner.pairs.len(), 2);
        for (s, y) in &inner.pairs {
            let scaled: Vec<f64> = s.iter().map(|v| lr * v).collect();
            let a_s = times_a(&scaled);
            for (ai, yi) in a_s.iter().zip(y) {
                assert!((ai - yi).abs() < 1e-12, "secant pair {a_s:?} vs {y:?}");
            }
        }
        let g = times_a(&x);
        let mut u = g.clone();
        inner.step(&mut u, &Context::new(&g, None), &mut rng);
        assert_eq!(inner.pairs.len(), 3);
        let h = dense_inverse(&inner.pairs, 3);
        for i in 0..3 {
            let expected: f64 = (0..3).map(|j| h[(i, j)] * g[j]).sum();
            assert!(
                (u[i] - expected).abs() < 1e-12 * expected.abs().max(1.0),
                "{u:?}"
            );
        }
        let (s, y) = inner.pairs.last().unwrap();
        let hy = inner.apply_inverse(y);
        for (a, b) in hy.iter().zip(s) {
            assert!((a - b).abs() < 1e-12, "H·y = {hy:?}, s = {s:?}");
        }
    }

    /// A pair with negative curvature is skipped; the step is then the normalized input.
    #[test]
    fn skips_pairs_without_positive_curvature() {
        let mut inner = Lbfgs::new(10, 1e-8, None);
        let mut rng = Rng::new(1);
        let mut u = vec![3.0, 0.0];
        inner.step(&mut u, &Context::new(&[3.0, 0.0], None), &mut rng);
        assert_eq!(u, vec![1.0, 0.0]);
        // Previous step û = (1, 0), so s = (−1, 0); a new input (4, 0) gives y = (1, 0): sᵀy < 0.
        let mut u = vec![4.0, 0.0];
        inner.step(&mut u, &Context::new(&[4.0, 0.0], None), &mut rng);
        assert!(inner.pairs.is_empty());
        assert_eq!(u, vec![1.0, 0.0]);
    }

    /// With max_growth, a quasi-Newton step longer than growth × the previous step's norm is
    /// scaled down to exactly that, keeping its direction.
    #[test]
    fn caps_the_step_at_max_growth_times_the_previous() {
        let mut inner = Lbfgs::new(10, 1e-8, Some(2.0));
        let mut rng = Rng::new(1);
        let mut u = vec![1.0, 1.0];
        inner.step(&mut u, &Context::new(&[1.0, 1.0], None), &mut rng);
        let first = dot(&u, &u).sqrt();
        // A tiny gradient change along the step: y = 0.01·(−s), so H·u is ~100× longer.
        let g = vec![1.0 - 0.01 * u[0], 1.0 - 0.01 * u[1]];
        let mut v = g.clone();
        inner.step(&mut v, &Context::new(&g, None), &mut rng);
        let uncapped = inner.apply_inverse(&g);
        assert!(dot(&uncapped, &uncapped).sqrt() > 10.0 * first);
        assert!((dot(&v, &v).sqrt() - 2.0 * first).abs() < 1e-12);
        let cos = dot(&v, &uncapped) / (dot(&v, &v) * dot(&uncapped, &uncapped)).sqrt();
        assert!((cos - 1.0).abs() < 1e-12);
    }

    /// Two pairs with memory 1 keep only the newest, and reprojection applies C to it.
    #[test]
    fn keeps_memory_pairs_and_reprojects_them() {
        let mut inner = Lbfgs::new(1, 1e-8, None);
        let mut rng = Rng::new(1);
        for g in [[4.0, 2.0], [2.0, 1.5], [1.0, 1.0]] {
            let mut u = g.to_vec();
            inner.step(&mut u, &Context::new(&g, None), &mut rng);
        }
        assert_eq!(inner.pairs.len(), 1);
        let (s, y) = inner.pairs[0].clone();
        let c = Mat::from_fn(2, 2, |i, j| if i == j { 0.0 } else { 1.0 });
        inner.reproject(&c, &mut rng);
        assert_eq!(inner.pairs[0], (vec![s[1], s[0]], vec![y[1], y[0]]));
    }
}
