//! The extended Rosenbrock function: f(x) = Σᵢ 100·(x₂ᵢ₊₁ − x₂ᵢ²)² + (1 − x₂ᵢ)² over d/2
//! independent pairs, from the standard start (−1.2, 1, −1.2, 1, …); minimum 0 at x = 1.
//! The Hessian is block-diagonal with 2×2 blocks, so H·v is exact and cheap.

use crate::task::Task;

pub struct Rosenbrock {
    d: usize,
}

impl Rosenbrock {
    pub fn new(d: usize) -> Self {
        assert!(
            d.is_multiple_of(2),
            "the extended Rosenbrock function needs an even d"
        );
        Rosenbrock { d }
    }
}

impl Task for Rosenbrock {
    fn id(&self) -> &'static str {
        "rosenbrock"
    }

    fn title(&self) -> String {
        format!("extended Rosenbrock, d={}", self.d)
    }

    fn init(&self) -> Vec<f64> {
        (0..self.d)
            .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
            .collect()
    }

    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut loss = 0.0;
        for (p, g) in x.chunks_exact(2).zip(grad.chunks_exact_mut(2)) {
            let (a, b) = (p[0], p[1]);
            let valley = b - a * a;
            loss += 100.0 * valley * valley + (1.0 - a) * (1.0 - a);
            g[0] = -400.0 * a * valley - 2.0 * (1.0 - a);
            g[1] = 200.0 * valley;
        }
        loss
    }

    fn hvp(&self, x: &[f64], v: &[f64], hv: &mut [f64]) {
        for ((p, w), out) in x
            .chunks_exact(2)
            .zip(v.chunks_exact(2))
            .zip(hv.chunks_exact_mut(2))
        {
            let (a, b) = (p[0], p[1]);
            let haa = 1200.0 * a * a - 400.0 * b + 2.0;
            let hab = -400.0 * a;
            out[0] = haa * w[0] + hab * w[1];
            out[1] = hab * w[0] + 200.0 * w[1];
        }
    }

    fn hvp_kind(&self) -> &'static str {
        "exact (2×2 blocks)"
    }

    fn minimum(&self) -> Option<f64> {
        Some(0.0)
    }
}
