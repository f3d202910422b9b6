//! f(x) = ½(x − x*)ᵀ·A·(x − x*), A = Rᵀ·diag(λ)·R with a random rotation R and eigenvalues λ
//! log-spaced from 1e-3 to 1e3 (condition 1e6). Ill-conditioned in directions that are not
//! axis-aligned, which a diagonal method like Adam cannot undo. H·v = A·v exactly.

use crate::task::{Matrix, Rng, Task, dot, random_rotation};

pub struct RotatedQuadratic {
    /// A = Rᵀ·diag(λ)·R, formed once so a gradient costs one d×d product.
    hessian: Matrix,
    optimum: Vec<f64>,
    condition: f64,
}

impl RotatedQuadratic {
    pub fn new(d: usize, condition: f64, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let rotation = random_rotation(&mut rng, d);
        let smallest = 1.0 / condition.sqrt();
        let eigenvalues: Vec<f64> = (0..d)
            .map(|i| smallest * condition.powf(i as f64 / (d - 1) as f64))
            .collect();
        let mut data = vec![0.0; d * d];
        for (k, lambda) in eigenvalues.iter().enumerate() {
            let r = rotation.row(k);
            for i in 0..d {
                let scaled = lambda * r[i];
                data[i * d..(i + 1) * d]
                    .iter_mut()
                    .zip(r)
                    .for_each(|(a, rj)| *a += scaled * rj);
            }
        }
        let optimum = (0..d).map(|_| 2.0 * rng.uniform()).collect();
        RotatedQuadratic {
            hessian: Matrix {
                rows: d,
                cols: d,
                data,
            },
            optimum,
            condition,
        }
    }
}

impl Task for RotatedQuadratic {
    fn id(&self) -> &'static str {
        "quadratic"
    }

    fn title(&self) -> String {
        format!(
            "rotated quadratic, d={}, condition {:.0e}",
            self.optimum.len(),
            self.condition
        )
    }

    fn init(&self) -> Vec<f64> {
        vec![0.0; self.optimum.len()]
    }

    fn loss_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let e: Vec<f64> = x.iter().zip(&self.optimum).map(|(a, b)| a - b).collect();
        self.hessian.times(&e, grad);
        0.5 * dot(&e, grad)
    }

    fn hvp(&self, _x: &[f64], v: &[f64], hv: &mut [f64]) {
        self.hessian.times(v, hv);
    }

    fn hvp_kind(&self) -> &'static str {
        "exact (A·v)"
    }

    fn minimum(&self) -> Option<f64> {
        Some(0.0)
    }
}
