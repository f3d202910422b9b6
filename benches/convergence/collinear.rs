//! Synthetic collinear-feature classification: 512 samples whose 64 features are noisy linear
//! combinations of 4 latent variables, so the feature covariance is dominated by a rank-4 part
//! that is not axis-aligned. Labels (3 classes) are drawn from a softmax model on the latent
//! variables, so the data is not separable and the loss has a finite minimum.

use crate::logistic::{Dataset, Logistic};
use crate::task::{Matrix, Rng};

const SAMPLES: usize = 512;
const FEATURES: usize = 64;
const LATENT: usize = 4;
const CLASSES: usize = 3;
const NOISE: f64 = 0.05;

pub fn collinear_logistic(seed: u64) -> Logistic {
    let mut rng = Rng(seed);
    let mixing = rng.normals(FEATURES * LATENT);
    let teacher = rng.normals(CLASSES * LATENT);
    let mut features = Vec::with_capacity(SAMPLES * FEATURES);
    let mut labels = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let z = rng.normals(LATENT);
        for row in mixing.chunks_exact(LATENT) {
            let clean: f64 = row.iter().zip(&z).map(|(m, zi)| m * zi).sum();
            features.push(clean + NOISE * rng.normal());
        }
        labels.push(sample_class(&teacher, &z, &mut rng));
    }
    let data = Dataset {
        features: Matrix {
            rows: SAMPLES,
            cols: FEATURES,
            data: features,
        },
        labels,
        classes: CLASSES,
    };
    Logistic::new("collinear", "collinear-feature logistic regression", data)
}

/// Draws a class from softmax(T·z).
fn sample_class(teacher: &[f64], z: &[f64], rng: &mut Rng) -> usize {
    let logits: Vec<f64> = teacher
        .chunks_exact(z.len())
        .map(|row| row.iter().zip(z).map(|(t, zi)| t * zi).sum())
        .collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = logits.iter().map(|s| (s - max).exp()).collect();
    let mut u = (rng.uniform() + 0.5) * weights.iter().sum::<f64>();
    for (class, w) in weights.iter().enumerate() {
        if u < *w {
            return class;
        }
        u -= w;
    }
    weights.len() - 1
}
