//! A small tanh MLP (2–32–32–1) fitting y = sin(3a)·cos(2b) on a 16×16 grid over [−1, 1]²,
//! mean squared error / 2, full batch. Layers are dense: for each, W (out × in,
//! row-major) then b; tanh after every layer but the last. H·v is the default central finite
//! difference of the gradient.

use crate::task::{Rng, Task, dot};

const WIDTHS: [usize; 4] = [2, 32, 32, 1];
/// The inputs are a SIDE × SIDE grid.
const SIDE: usize = 16;
const SAMPLES: usize = SIDE * SIDE;

pub struct Mlp {
    inputs: Vec<[f64; 2]>,
    targets: Vec<f64>,
    seed: u64,
}

/// Offsets of each layer's W in the parameter vector (b follows W).
fn layer_offsets() -> Vec<usize> {
    let mut offsets = vec![0];
    for w in WIDTHS.windows(2) {
        offsets.push(offsets.last().unwrap() + w[0] * w[1] + w[1]);
    }
    offsets
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

    /// Activations of every layer for one input (the first is the input itself).
    fn forward(&self, params: &[f64], input: &[f64]) -> Vec<Vec<f64>> {
        let offsets = layer_offsets();
        let mut acts = vec![input.to_vec()];
        for (l, w) in WIDTHS.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let layer = &params[offsets[l]..offsets[l + 1]];
            let (weights, bias) = layer.split_at(fan_in * fan_out);
            let prev = acts.last().unwrap();
            let last = l + 2 == WIDTHS.len();
            let out = (0..fan_out)
                .map(|j| {
                    let s = dot(&weights[j * fan_in..(j + 1) * fan_in], prev) + bias[j];
                    if last { s } else { s.tanh() }
                })
                .collect();
            acts.push(out);
        }
        acts
    }
}

impl Task for Mlp {
    fn id(&self) -> &'static str {
        "mlp"
    }

    fn title(&self) -> String {
        format!(
            "MLP 2-32-32-1 tanh regression, {SAMPLES} samples (n={})",
            layer_offsets().last().unwrap()
        )
    }

    fn init(&self) -> Vec<f64> {
        let mut rng = Rng(self.seed);
        let offsets = layer_offsets();
        let mut params = vec![0.0; *offsets.last().unwrap()];
        for (l, w) in WIDTHS.windows(2).enumerate() {
            let scale = 1.0 / (w[0] as f64).sqrt();
            params[offsets[l]..offsets[l] + w[0] * w[1]]
                .iter_mut()
                .for_each(|p| *p = scale * rng.normal());
        }
        params
    }

    fn loss_grad(&self, params: &[f64], grad: &mut [f64]) -> f64 {
        grad.fill(0.0);
        let offsets = layer_offsets();
        let scale = 1.0 / SAMPLES as f64;
        let mut loss = 0.0;
        for (input, target) in self.inputs.iter().zip(&self.targets) {
            let acts = self.forward(params, input);
            let err = acts[WIDTHS.len() - 1][0] - target;
            loss += 0.5 * err * err * scale;
            // Back-propagate: `delta` is ∂loss/∂(pre-activation) of layer l.
            let mut delta = vec![err * scale];
            for l in (0..WIDTHS.len() - 1).rev() {
                let (fan_in, fan_out) = (WIDTHS[l], WIDTHS[l + 1]);
                let (weights, bias) =
                    grad[offsets[l]..offsets[l + 1]].split_at_mut(fan_in * fan_out);
                for (j, d) in delta.iter().enumerate() {
                    weights[j * fan_in..(j + 1) * fan_in]
                        .iter_mut()
                        .zip(&acts[l])
                        .for_each(|(g, a)| *g += d * a);
                    bias[j] += d;
                }
                if l > 0 {
                    let w = &params[offsets[l]..offsets[l] + fan_in * fan_out];
                    delta = (0..fan_in)
                        .map(|i| {
                            let back: f64 = delta
                                .iter()
                                .enumerate()
                                .map(|(j, d)| d * w[j * fan_in + i])
                                .sum();
                            back * (1.0 - acts[l][i] * acts[l][i])
                        })
                        .collect();
                }
            }
        }
        loss
    }
}
