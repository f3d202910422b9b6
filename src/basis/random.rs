//! Random (docs/algorithm.md §3.8): Q is the orthonormal factor of a Gaussian n×rank matrix (tall
//! QR on the backend), drawn anew every `generate_freq` updates; the corrections themselves are
//! ignored. Fixes: `generate_freq` is honored (§7 item 18) and the rank is capped at n
//! (§7 item 19). No eigenvalues.
//!
//! The Gaussian columns come from the backend's counter-based stream under a key made of the
//! basis's seed and the number of matrices drawn, so the state is Q and two counters. A new Q
//! costs the draw, the QR (four passes over n×rank and 2·n·rank² flops twice) and C = Q_newᵀQ_old
//! (one more pass, 2·n·rank² flops).

use super::projection::{add_columns_scaled, project_columns};
use super::store::{adopt_columns, get_block, put_columns};
use super::{Basis, BasisChange, Outcome, Source};
use crate::correction::Correction;
use crate::backend::Backend;
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::state::{Decoder, Encoder};
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::{Declared, RANK};
use crate::component::int;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "random",
        params: &[
            RANK,
            int("generate_freq", 1, 1, "updates between new random bases"),
        ],
        summary: "random orthonormal subspace",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(Random::new(c, be, seed)?))
}

/// One matrix of two halves (the current random columns and the next, `q`), the update and
/// draw counters.
pub fn state(c: &Component, dims: &Dims) -> Declared {
    let r = c.usize("rank").min(dims.n);
    let layout = Layout::new()
        .vectors("q", r.saturating_mul(2) as u128)
        .u64s("updates", 1u8)
        .u64s("draws", 1u8);
    Declared { layout, rank: r }
}

pub struct Random<B: Backend> {
    /// Two halves of `rank` columns: the current Q and the next.
    matrix: B::Matrix,
    rank: usize,
    generate_freq: u64,
    /// Which half holds Q (columns half·rank..); `None` before the first update.
    half: Option<usize>,
    /// Updates seen.
    updates: u64,
    seed: u64,
    /// Gaussian matrices drawn so far.
    draws: u64,
}

impl<B: Backend> Random<B> {
    pub fn new(c: &Component, be: &B, seed: u64) -> Result<Self> {
        Ok(Random {
            matrix: be.matrix(0)?,
            rank: c.usize("rank").min(be.global_ndim()),
            generate_freq: c.usize("generate_freq") as u64,
            half: None,
            updates: 0,
            seed,
            draws: 0,
        })
    }

    fn columns(&self, half: usize) -> Vec<usize> {
        (half * self.rank..(half + 1) * self.rank).collect()
    }
}

impl<B: Backend> Basis<B> for Random<B> {
    fn prepare(&mut self, be: &B, _new_columns: usize) -> Result<()> {
        if be.matrix_columns(&self.matrix) < 2 * self.rank {
            be.grow_matrix(&mut self.matrix, 2 * self.rank)?;
        }
        Ok(())
    }

    fn update(&mut self, be: &B, _correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        let due = self.updates.is_multiple_of(self.generate_freq);
        self.updates += 1;
        if !due {
            return Ok(Outcome::Unchanged { failure: None });
        }
        self.prepare(be, 0)?;
        let next_half = self.half.map_or(0, |h| 1 - h);
        let next = self.columns(next_half);
        let key = self
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(self.draws);
        be.gaussian_columns(&mut self.matrix, &next, key);
        self.draws += 1;
        be.tall_qr(&mut self.matrix, &next, true);
        let change = self
            .half
            .map(|h| be.cross(&self.matrix, &next, &self.columns(h)));
        self.half = Some(next_half);
        Ok(Outcome::Changed(BasisChange { change }))
    }

    fn rank(&self) -> Option<usize> {
        self.half.map(|_| self.rank)
    }

    fn eigenvalues(&self) -> Option<&[f64]> {
        None
    }

    fn provides_eigenvalues(&self) -> bool {
        false
    }

    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>) {
        let (Source::CorrectionColumn(_, x) | Source::Vector(x)) = v;
        let half = self.half.expect("random: project before the first basis");
        project_columns(be, &self.matrix, &self.columns(half), x, out);
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        let half = self.half.expect("random: unproject before the first basis");
        add_columns_scaled(be, &self.matrix, &self.columns(half), (u, alpha), y);
    }

    fn state_bytes(&self, be: &B) -> usize {
        be.matrix_bytes(be.matrix_columns(&self.matrix))
    }

    /// `q` (the current Q, [rank, n], absent before the first update), `updates` and `draws`.
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        if let Some(h) = self.half {
            put_columns(be, enc, "q", &self.matrix, &self.columns(h));
        }
        enc.put_u64("updates", self.updates);
        enc.put_u64("draws", self.draws);
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        let r = self.rank;
        self.half = match dec.has("q") {
            true => {
                let (start, count) =
                    get_block(be, dec, "q", (&mut self.matrix, &[0, r]), 2 * r)?;
                if count != r {
                    return Err(Error::new(
                        Status::LRE_ERR_STATE,
                        format!("random: the state's Q does not have rank = {r} columns"),
                    ));
                }
                Some(start / r.max(1))
            }
            false => {
                adopt_columns(be, dec, "q", &mut self.matrix, 2 * r)?;
                None
            }
        };
        self.updates = dec.get_u64("updates")?;
        self.draws = dec.get_u64("draws")?;
        Ok(())
    }
}
