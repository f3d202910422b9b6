//! The chain (docs/algorithm.md §5.16): members applied in order to one k-vector; a basis change is
//! reprojected into every member with the same C, computed once (§7 item 22).

use super::{Context, Inner};
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};
use faer::Mat;

#[derive(Default)]
pub struct Chain {
    members: Vec<Box<dyn Inner>>,
}

impl Chain {
    pub fn new(members: Vec<Box<dyn Inner>>) -> Self {
        Chain { members }
    }

    pub fn push(&mut self, member: Box<dyn Inner>) {
        self.members.push(member);
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// u ← member_last(… member_first(u)).
    pub fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, rng: &mut Rng) {
        for member in &mut self.members {
            member.step(u, ctx, rng);
        }
    }

    pub fn reproject(&mut self, c: &Mat<f64>, rng: &mut Rng) {
        for member in &mut self.members {
            member.reproject(c, rng);
        }
    }

    /// Tells every member the basis absorbed a correction without changing.
    pub fn basis_refreshed(&mut self) {
        for member in &mut self.members {
            member.basis_refreshed();
        }
    }

    /// Writes every member's state under `chain/<index>/`.
    pub fn save(&self, enc: &mut Encoder<'_>) {
        for (i, member) in self.members.iter().enumerate() {
            enc.push(&format!("chain/{i}"));
            member.save(enc);
            enc.pop();
        }
    }

    /// Reads what `save` wrote.
    pub fn load(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        for (i, member) in self.members.iter_mut().enumerate() {
            dec.push(&format!("chain/{i}"));
            let loaded = member.load(dec);
            dec.pop();
            loaded?;
        }
        Ok(())
    }
}
