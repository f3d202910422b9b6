//! The chain (ALGORITHM.md §5.16): members applied in order to one k-vector; a basis change is
//! reprojected into every member with the same C, computed once (§7 item 22).

use super::{Context, Inner};
use crate::rng::Rng;
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

    /// Whether any member needs the basis's eigenvalues.
    pub fn needs_eigenvalues(&self) -> bool {
        self.members.iter().any(|m| m.needs_eigenvalues())
    }
}
