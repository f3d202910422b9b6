//! CommonDirections (docs/algorithm.md §3.13, §8.5): an orthonormal window of the last `rank`
//! correction directions. Each new column is orthogonalized against the window (CGS2,
//! [`OrthoColumns`]) and, if anything is left (more than 1000 ε of its norm, §7 item 9),
//! normalized and pushed; the oldest direction leaves once the window is full.
//!
//! The change of basis is exact and free: with S_new = [S_old without its `d` oldest columns,
//! new columns] and the new columns orthogonal to S_old, C = S_newᵀS_old has C[i, i + d] = 1
//! for the kept columns and zero rows for the new ones. Per update: one pass over the window
//! (Sᵀy, which also projects the gradient) and one for the unprojection (which also writes the
//! new column). Fixes over the reference: the window is capped at `rank` and at n (§7 item 19),
//! the returned basis is the window itself (not the window plus the new columns), the
//! reference's O(n·k²) orthogonality check is dropped, and α and Z are not used: a direction
//! is a direction (corrections must be symmetric).

use super::ortho::OrthoColumns;
use super::projection::Cached;
use super::{Basis, BasisChange, Outcome, Source};
use crate::correction::Correction;
use crate::backend::Backend;
use crate::component::Component;
use crate::error::{Error, Result};
use crate::state::{Decoder, Encoder};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::Dims;
use super::{Declared, RANK};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "common_directions",
        params: &[RANK],
        summary: "orthonormal window of correction directions (common-directions method)",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, _seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(CommonDirections::new(c, be)?))
}

/// The orthonormal window of directions and whether it started.
pub fn state(c: &Component, dims: &Dims) -> Declared {
    super::ortho::declared(c, dims, |layout, _| layout.u64s("started", 1u8))
}

pub struct CommonDirections<B: Backend> {
    window: OrthoColumns<B>,
    rank: usize,
    started: bool,
    cached: Cached,
}

impl<B: Backend> CommonDirections<B> {
    pub fn new(c: &Component, be: &B) -> Result<Self> {
        let rank = c.usize("rank").min(be.global_ndim());
        Ok(CommonDirections {
            window: OrthoColumns::new(be, rank + 2)?,
            rank,
            started: false,
            cached: Cached::default(),
        })
    }
}

impl<B: Backend> Basis<B> for CommonDirections<B> {
    fn prepare(&mut self, be: &B, new_columns: usize) -> Result<()> {
        self.window.reserve(be, new_columns)
    }

    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        if correction.z.is_some() {
            return Err(Error::unsupported(
                "basis common_directions needs symmetric corrections; use symmetrize=true",
            ));
        }
        let before = self.window.len();
        self.window.reserve(be, correction.columns.len())?;
        let coords = self.window.append(be, &correction.columns);
        let dropped = self.window.len().saturating_sub(self.rank);
        self.window.retire_front(dropped);
        self.cached.set(
            (0..coords.ncols())
                .map(|j| coords.col(j).iter().skip(dropped).copied().collect())
                .collect(),
        );
        let k = self.window.len();
        let change = match (self.started, k == before && dropped == 0) {
            (true, true) => return Ok(Outcome::Unchanged { failure: None }),
            (true, false) => Some(Mat::from_fn(k, before, |i, j| {
                f64::from(u8::from(j == i + dropped))
            })),
            (false, _) => None,
        };
        self.started = true;
        Ok(Outcome::Changed(BasisChange { change }))
    }

    fn rank(&self) -> Option<usize> {
        self.started.then(|| self.window.len())
    }

    fn eigenvalues(&self) -> Option<&[f64]> {
        None
    }

    fn provides_eigenvalues(&self) -> bool {
        false
    }

    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>) {
        if let Some(x) = self.cached.lookup(v, out) {
            *out = self.window.project(be, x);
        }
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        let w: Vec<f64> = u.iter().map(|x| alpha * x).collect();
        self.window.add_combination(be, &w, y);
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.window.state_bytes(be)
    }

    /// The window (see `OrthoColumns::save`) and whether the basis exists (`started`).
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        self.window.save(be, enc);
        enc.put_u64("started", u64::from(self.started));
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.window.load(be, dec)?;
        self.started = dec.get_u64("started")? != 0;
        self.cached.clear();
        Ok(())
    }
}
