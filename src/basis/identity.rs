//! The identity basis: Q = I, k = n. The inner chain runs on the whole gradient, so
//! `basis=identity; chain=[adam]` is plain Adam — the baseline every benchmark compares against.
//! The k-space (here n-sized) vectors live on the host in f64, like every inner optimizer's state.

use super::{Basis, BasisChange, Outcome, Source};
use crate::correction::Correction;
use crate::backend::Backend;
use crate::error::Result;
use crate::state::{Decoder, Encoder};
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::Declared;
use crate::component::Component;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "identity",
        params: &[],
        summary: "Q = I (k = n): the inner chain runs on the full gradient; basis=identity; chain=[adam] is Adam",
    },
];

pub fn build_seeded<B: Backend + 'static>(_c: &Component, (be, _seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(Identity::new(be)))
}

/// Whether the first correction arrived; k = n.
pub fn state(_c: &Component, dims: &Dims) -> Declared {
    Declared {
        layout: Layout::new().u64s("started", 1u8),
        rank: dims.n,
    }
}

pub struct Identity {
    n: usize,
    started: bool,
    /// Host scratch for α·u (length n), so a step does not allocate.
    scaled: Vec<f64>,
}

impl Identity {
    pub fn new<B: Backend>(be: &B) -> Self {
        Identity {
            n: be.ndim(),
            started: false,
            scaled: Vec::new(),
        }
    }
}

impl<B: Backend> Basis<B> for Identity {
    fn update(&mut self, _be: &B, _correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        if self.started {
            return Ok(Outcome::Unchanged { failure: None });
        }
        self.started = true;
        Ok(Outcome::Changed(BasisChange { change: None }))
    }

    fn rank(&self) -> Option<usize> {
        self.started.then_some(self.n)
    }

    fn eigenvalues(&self) -> Option<&[f64]> {
        None
    }

    fn provides_eigenvalues(&self) -> bool {
        false
    }

    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>) {
        let (Source::CorrectionColumn(_, x) | Source::Vector(x)) = v;
        out.resize(self.n, 0.0);
        be.download(x, out);
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        self.scaled.clear();
        self.scaled.extend(u.iter().map(|x| alpha * x));
        be.add_host(y, &self.scaled);
    }

    fn state_bytes(&self, _be: &B) -> usize {
        0
    }

    fn save(&self, _be: &B, enc: &mut Encoder<'_>) {
        enc.put_u64("started", u64::from(self.started));
    }

    fn load(&mut self, _be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.started = dec.get_u64("started")? != 0;
        Ok(())
    }
}
