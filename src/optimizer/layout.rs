//! The optimizer's declared state: its own buffers, then the curvature's, the basis's and each
//! chain member's, under the names `save_state` writes them with (docs/state-format.md).

use crate::spec::Config;
use crate::state::layout::{Dims, Layout};
use crate::{basis, curvature, inner};

/// Every buffer an optimizer with this configuration over a vector of `n` rows (the global n
/// when sharded: caps such as k ≤ n are global) can keep, at its largest. Vector extents count
/// vectors; their rows are the optimizer's own (its shard's).
pub fn declare(config: &Config, n: usize) -> Layout {
    let update_freq = usize::try_from(config.update_freq).unwrap_or(usize::MAX);
    let mut dims = Dims::new(n, update_freq, config.symmetrize);
    let curvature = curvature::state(&config.curvature, &dims);
    dims.columns = curvature.columns;
    dims.paired = curvature.paired;
    let basis = basis::state(&config.basis, &dims);
    dims.rank = basis.rank.min(n);
    let own = Layout::new()
        .u64s("step", 1u8)
        .u64s("rank", 1u8)
        .f64s("eigenvalues", dims.rank as u128)
        .u64s("rng", 7u8);
    let mut layout = Layout::new()
        .nest("optimizer", own)
        .nest("curvature", curvature.layout)
        .nest("basis", basis.layout);
    for (i, member) in config.chain.iter().enumerate() {
        layout = layout.nest(&format!("chain/{i}"), inner::state(member, &dims));
    }
    if config.has_diagonal() {
        layout = layout.nest("diagonal", super::diagonal_adam::state(n));
    }
    layout
}
