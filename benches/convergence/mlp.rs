//! A small tanh MLP (2–32–32–1) fitting y = sin(3a)·cos(2b) on a 16×16 grid over [−1, 1]²,
//! mean squared error / 2, full batch. Layers are dense: for each, W (out × in,
//! row-major) then b; tanh after every layer but the last. H·v is the default central finite
//! difference of the gradient.

use crate::dense::Dense;
use crate::task::{Rng, Task};

const NET: Dense = Dense {
    widths: &[2, 32, 32, 1],
};
/// The inputs are a SIDE × SIDE grid.
const SIDE: usize = 16;
const SAMPLES: usize = SIDE * SIDE;

pub struct Mlp {
    inputs: Vec<[f64; 2]>,
    targets: Vec<f64>,
    seed: u64,
}

impl Mlp {
    /// The data is a 16×16 grid; `seed` draws the initial weights.
    pub fn new(seed: u64) -> Self {
        let coordinate = |i: usize| 2.0 * i as f64 / (SIDE - 1) as f64 - 1.0;
        let inputs: Vec<[f64; 2]> = (0..SAMPLES)
            .map(|i| [coordinate(i % SIDE), coordinate(i / SIDE)])
            .collect();
        let targets = inputs
            .iter()
            .map(|[a, b]| (3.0 * a).sin() * (2.0 * b).cos())
            .collect();
        Mlp {
            inputs,
            targets,
            seed,
        }
    }
}

impl Task for Mlp {
    fn id(&self) -> &'static str {
        "mlp"
    }

    fn title(&self) -> String {
        format!(
            "MLP 2-32-32-1 tanh regression, {SAMPLES} samples (n={})",
            NET.len()
        )
    }

    fn init(&self) -> Vec<f64> {
        NET.init(&mut Rng(self.seed))
    }

    fn loss_grad(&self, params: &[f64], grad: &mut [f64]) -> f64 {
        grad.fill(0.0);
        let scale = 1.0 / SAMPLES as f64;
        let mut loss = 0.0;
        for (input, target) in self.inputs.iter().zip(&self.targets) {
            let acts = NET.forward(params, input);
            let err = acts.last().unwrap()[0] - target;
            loss += 0.5 * err * err * scale;
            NET.backward(params, &acts, vec![err * scale], grad);
        }
        loss
    }
}
