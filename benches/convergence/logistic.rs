//! Multinomial logistic regression, full batch: f(W, b) = mean over samples of
//! logsumexp(s) − s_y with logits s = W·x + b, plus (λ/2)·‖W‖² with λ = 1/samples: scikit-learn's
//! default `LogisticRegression(C=1)` written for the mean loss. The ridge term gives a finite
//! minimizer on separable data (digits is separable). Parameters: W row-major (classes × features),
//! then b. H·v is exact: per sample, δs = V·x + δb and H·v gets (p⊙δs − p·(pᵀδs)) ⊗ [x, 1].

use crate::newton::newton_minimum;
use crate::task::{Matrix, Task, dot};
use std::sync::OnceLock;

/// Features (one sample per row) and labels in 0..classes.
pub struct Dataset {
    pub features: Matrix,
    pub labels: Vec<usize>,
    pub classes: usize,
}

pub struct Logistic {
    id: &'static str,
    name: String,
    data: Dataset,
    ridge: f64,
    /// f*, found by Newton's method when first asked for.
    minimum: OnceLock<f64>,
}

impl Logistic {
    pub fn new(id: &'static str, name: &str, data: Dataset) -> Self {
        let ridge = 1.0 / data.labels.len() as f64;
        let name = format!(
            "{name}: {} samples × {} features, {} classes (n={}), ridge 1/samples",
            data.features.rows,
            data.features.cols,
            data.classes,
            (data.features.cols + 1) * data.classes
        );
        Logistic {
            id,
            name,
            data,
            ridge,
            minimum: OnceLock::new(),
        }
    }

    fn features(&self) -> usize {
        self.data.features.cols
    }

    /// Logits W·x + b for one sample.
    fn logits(&self, params: &[f64], x: &[f64], out: &mut [f64]) {
        let (w, b) = params.split_at(self.data.classes * self.features());
        for (c, o) in out.iter_mut().enumerate() {
            *o = dot(&w[c * x.len()..(c + 1) * x.len()], x) + b[c];
        }
    }

    /// Adds `coef[c]·[x, 1]` to the W and b parts of `out` (the gradient's shape).
    fn add_outer(&self, coef: &[f64], x: &[f64], scale: f64, out: &mut [f64]) {
        let (w, b) = out.split_at_mut(self.data.classes * self.features());
        for (c, k) in coef.iter().enumerate() {
            let k = k * scale;
            w[c * x.len()..(c + 1) * x.len()]
                .iter_mut()
                .zip(x)
                .for_each(|(o, xi)| *o += k * xi);
            b[c] += k;
        }
    }

    /// The ridge part of the loss for W, and adds λ·W to `out`'s W part.
    fn ridge(&self, params: &[f64], out: &mut [f64]) -> f64 {
        let weights = self.data.classes * self.features();
        out[..weights]
            .iter_mut()
            .zip(&params[..weights])
            .for_each(|(o, w)| *o += self.ridge * w);
        0.5 * self.ridge * dot(&params[..weights], &params[..weights])
    }
}

/// Softmax of `logits` in place; returns logsumexp.
pub fn softmax(logits: &mut [f64]) -> f64 {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in logits.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    logits.iter_mut().for_each(|s| *s /= sum);
    max + sum.ln()
}

impl Task for Logistic {
    fn id(&self) -> &'static str {
        self.id
    }

    fn title(&self) -> String {
        self.name.clone()
    }

    fn init(&self) -> Vec<f64> {
        vec![0.0; (self.features() + 1) * self.data.classes]
    }

    fn loss_grad(&self, params: &[f64], grad: &mut [f64]) -> f64 {
        grad.fill(0.0);
        let scale = 1.0 / self.data.labels.len() as f64;
        let mut p = vec![0.0; self.data.classes];
        let mut loss = 0.0;
        for (i, &label) in self.data.labels.iter().enumerate() {
            let x = self.data.features.row(i);
            self.logits(params, x, &mut p);
            let correct = p[label];
            loss += (softmax(&mut p) - correct) * scale;
            p[label] -= 1.0;
            self.add_outer(&p, x, scale, grad);
        }
        loss + self.ridge(params, grad)
    }

    fn hvp(&self, params: &[f64], v: &[f64], hv: &mut [f64]) {
        hv.fill(0.0);
        let scale = 1.0 / self.data.labels.len() as f64;
        let mut p = vec![0.0; self.data.classes];
        let mut ds = vec![0.0; self.data.classes];
        for i in 0..self.data.labels.len() {
            let x = self.data.features.row(i);
            self.logits(params, x, &mut p);
            softmax(&mut p);
            self.logits(v, x, &mut ds);
            let mean = dot(&p, &ds);
            ds.iter_mut()
                .zip(&p)
                .for_each(|(d, pc)| *d = pc * (*d - mean));
            self.add_outer(&ds, x, scale, hv);
        }
        self.ridge(v, hv);
    }

    fn hvp_kind(&self) -> &'static str {
        "exact (softmax Hessian per sample)"
    }

    fn minimum(&self) -> Option<f64> {
        Some(*self.minimum.get_or_init(|| newton_minimum(self)))
    }
}
