//! Dense layers shared by the MLP tasks: for each layer W (out × in, row-major) then b in the
//! parameter vector, tanh after every layer but the last, W drawn from N(0, 1/fan_in) and b = 0.

use crate::task::{Rng, dot};

pub struct Dense {
    pub widths: &'static [usize],
}

impl Dense {
    /// Offsets of each layer's W in the parameter vector (b follows W); the last is the length.
    pub fn offsets(&self) -> Vec<usize> {
        let mut offsets = vec![0];
        for w in self.widths.windows(2) {
            offsets.push(offsets.last().unwrap() + w[0] * w[1] + w[1]);
        }
        offsets
    }

    pub fn len(&self) -> usize {
        *self.offsets().last().unwrap()
    }

    pub fn init(&self, rng: &mut Rng) -> Vec<f64> {
        let offsets = self.offsets();
        let mut params = vec![0.0; self.len()];
        for (l, w) in self.widths.windows(2).enumerate() {
            let scale = 1.0 / (w[0] as f64).sqrt();
            params[offsets[l]..offsets[l] + w[0] * w[1]]
                .iter_mut()
                .for_each(|p| *p = scale * rng.normal());
        }
        params
    }

    /// Activations of every layer for one input (the first is the input itself, the last the
    /// output, without tanh).
    pub fn forward(&self, params: &[f64], input: &[f64]) -> Vec<Vec<f64>> {
        let offsets = self.offsets();
        let mut acts = vec![input.to_vec()];
        for (l, w) in self.widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let (weights, bias) = params[offsets[l]..offsets[l + 1]].split_at(fan_in * fan_out);
            let prev = acts.last().unwrap();
            let last = l + 2 == self.widths.len();
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

    /// Adds one sample's gradient to `grad` by back-propagation, given its activations and
    /// `delta` = ∂loss/∂output.
    pub fn backward(
        &self,
        params: &[f64],
        acts: &[Vec<f64>],
        mut delta: Vec<f64>,
        grad: &mut [f64],
    ) {
        let offsets = self.offsets();
        for l in (0..self.widths.len() - 1).rev() {
            let (fan_in, fan_out) = (self.widths[l], self.widths[l + 1]);
            let (weights, bias) = grad[offsets[l]..offsets[l + 1]].split_at_mut(fan_in * fan_out);
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
}
