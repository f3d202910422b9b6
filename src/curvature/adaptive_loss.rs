//! ℓ̂ of docs/algorithm.md §2.3, shared by the loss-weighted curvatures: with `adaptive`, the loss
//! minus the smallest previous loss (the raw loss on the first step); otherwise the loss.

use crate::error::Result;
use crate::state::{Decoder, Encoder};

pub struct AdaptiveLoss {
    adaptive: bool,
    /// The smallest loss seen so far.
    min: Option<f64>,
}

impl AdaptiveLoss {
    pub fn new(adaptive: bool) -> Self {
        AdaptiveLoss {
            adaptive,
            min: None,
        }
    }

    /// ℓ̂ of this step's loss; then remembers the loss for the minimum.
    pub fn next(&mut self, loss: f64) -> f64 {
        let weight = match (self.adaptive, self.min) {
            (true, Some(min)) => loss - min,
            _ => loss,
        };
        self.min = Some(self.min.map_or(loss, |m| m.min(loss)));
        weight
    }

    pub fn save(&self, enc: &mut Encoder<'_>) {
        if let Some(min) = self.min {
            enc.put("min_loss", &[], &[min]);
        }
    }

    pub fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        self.min = if dec.has("min_loss") {
            Some(dec.get_shaped::<f64>("min_loss", &[])?[0])
        } else {
            None
        };
        Ok(())
    }
}
