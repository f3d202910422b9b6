//! The two passes over an f32 window that every GGT step makes, Mᵀg (column dots) and
//! y + M·w (the unprojection), at the speed the window streams from memory. The window may also
//! be stored in bf16 or f16 (`crate::half`): its entries are widened to f32 exactly, so the
//! same code and bounds apply to the stored values. Products are
//! accumulated in f32 within short blocks (twice the SIMD lanes of f64 and no conversion in the
//! inner loop) and in f64 across blocks, so the rounding error depends on the block length, not
//! on n. Like the f64 kernels, the order of operations is fixed by the source (a fixed lane
//! count, explicit fused multiply-adds), so results do not depend on the SIMD width.
//!
//! Error bounds, with u = 2⁻²⁴ and γ_k = k·u/(1 − k·u) (each fused multiply-add rounds once,
//! after the exact product):
//!
//! - `dots`: each of the 16 lanes sums at most 16 products in f32, within γ₁₆ < 9.6e-7 of the
//!   sum of their magnitudes. A lane sum that overflowed or is below 2⁻¹⁰⁰ (where f32 underflow,
//!   at most 2⁻¹⁵⁰ per rounding, could matter) is recomputed in f64 from exact products, and
//!   the f64 sums across blocks, lanes and threads add less than 1e-8 for n ≤ 2⁴⁰. So
//!   |computed − ⟨c, x⟩| ≤ 1e-6 · Σ_i |c_i·x_i|.
//! - `combine`: w_j is rounded to f32 (this path runs only when every w_j is 0 or a normal
//!   f32, so by at most u relative), at most 8 products per row are summed in f32 and the
//!   groups in f64; a block whose f32 sums overflowed is recomputed in f64 by the caller. So
//!   the sum added to y_i is within 6e-7 · Σ_j |w_j·c_j[i]| + p·2⁻¹⁵⁰ (p columns) of the exact
//!   one, before y_i's own rounding.

use crate::half::{Bf16, F16, Half};
use std::ops::Range;

/// A window element as these passes read it: an f32, or a 16-bit storage format widened to f32
/// exactly.
pub trait Streamed: Copy + Send + Sync + 'static {
    fn widen(self) -> f32;
}

impl Streamed for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Streamed for Bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

impl Streamed for F16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// f32 lanes of every sum: a fixed count, not the SIMD width.
const LANES: usize = 16;
/// 16-row chunks per short block of `dots`: each lane sums this many products in f32.
const STEPS: usize = 16;
/// Below this a lane sum of `dots` may have lost digits to f32 underflow; above it 16 roundings
/// of at most 2⁻¹⁵⁰ each are below 2⁻⁴⁶ of it. 2⁻¹⁰⁰.
const TINY: f32 = 1.0 / (1u128 << 100) as f32;
/// Columns summed per row in f32 by `combine` before the sum joins its f64 accumulator.
const COLUMNS: usize = 8;

/// Every lane's f32 sum is finite and not so small that underflow could have cost digits.
#[inline(always)]
fn trustworthy(lanes: &[f32; LANES]) -> bool {
    let mut ok = true;
    for v in lanes {
        // NaN fails both comparisons.
        ok &= v.abs() >= TINY && v.abs() <= f32::MAX;
    }
    ok
}

/// The 16 lanes added in a fixed tree.
#[inline(always)]
fn lanes_sum(a: &[f64; LANES]) -> f64 {
    let mut half = [0.0; LANES / 2];
    for i in 0..LANES / 2 {
        half[i] = a[i] + a[i + LANES / 2];
    }
    ((half[0] + half[4]) + (half[1] + half[5])) + ((half[2] + half[6]) + (half[3] + half[7]))
}

/// [⟨c_0, x⟩, …, ⟨c_{G−1}, x⟩] for slices as long as x, sharing each load of x. Whole 16-row
/// chunks go through the f32 short blocks; the last rows (fewer than 16) are summed in f64.
#[inline(always)]
pub fn dots<C: Streamed, const G: usize>(c: [&[C]; G], x: &[f32]) -> [f64; G] {
    let (x16, x_rest) = x.as_chunks::<LANES>();
    let chunks = x16.len();
    let c16 = c.map(|col| &col.as_chunks::<LANES>().0[..chunks]);
    let mut wide = [[0.0f64; LANES]; G];
    let mut start = 0;
    while start < chunks {
        let end = (start + STEPS).min(chunks);
        let mut acc = [[0.0f32; LANES]; G];
        for r in start..end {
            let xr = &x16[r];
            for j in 0..G {
                let cr = &c16[j][r];
                for i in 0..LANES {
                    acc[j][i] = cr[i].widen().mul_add(xr[i], acc[j][i]);
                }
            }
        }
        for j in 0..G {
            if trustworthy(&acc[j]) {
                for i in 0..LANES {
                    wide[j][i] += acc[j][i] as f64;
                }
            } else {
                let mut exact = [0.0f64; LANES];
                for r in start..end {
                    for i in 0..LANES {
                        exact[i] =
                            (c16[j][r][i].widen() as f64).mul_add(x16[r][i] as f64, exact[i]);
                    }
                }
                for i in 0..LANES {
                    wide[j][i] += exact[i];
                }
            }
        }
        start = end;
    }
    let first = chunks * LANES;
    let mut sums = [0.0; G];
    for j in 0..G {
        let mut tail = 0.0f64;
        for (i, xi) in x_rest.iter().enumerate() {
            tail = (c[j][first + i].widen() as f64).mul_add(*xi as f64, tail);
        }
        sums[j] = lanes_sum(&wide[j]) + tail;
    }
    sums
}

/// w as f32 when every entry is 0 or rounds to a normal f32, else None (the caller then
/// combines in f64).
pub fn weights(w: &[f64]) -> Option<Vec<f32>> {
    let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let representable = w
        .iter()
        .zip(&w32)
        .all(|(v, v32)| *v == 0.0 || v32.is_normal());
    representable.then_some(w32)
}

/// acc[r] += Σ_j w_j·c_j[r] over G columns, per row a chain of G f32 fused multiply-adds added
/// to the f64 accumulator.
#[inline(always)]
fn add_group<C: Streamed, const G: usize>(
    c: [&[[C; LANES]]; G],
    w: [f32; G],
    acc: &mut [[f64; LANES]],
) {
    for (r, a) in acc.iter_mut().enumerate() {
        let mut s = [0.0f32; LANES];
        for j in 0..G {
            let cr = &c[j][r];
            for i in 0..LANES {
                s[i] = cr[i].widen().mul_add(w[j], s[i]);
            }
        }
        for i in 0..LANES {
            a[i] += s[i] as f64;
        }
    }
}

/// acc[r] ← Σ_j w_j·c_j[rows.start + r] for the whole 16-row chunks of
/// `rows`, columns in groups of 8 (then 4, then 1). Returns how many rows it summed (the
/// caller sums the rest in f64), or None if an f32 sum overflowed (acc is then garbage).
#[inline(always)]
pub fn combine<C: Streamed>(
    columns: &[&[C]],
    w: &[f32],
    rows: Range<usize>,
    acc: &mut [f64],
) -> Option<usize> {
    let (acc16, _) = acc.as_chunks_mut::<LANES>();
    acc16.fill([0.0; LANES]);
    let chunks = acc16.len();
    let block = |j: usize| &columns[j][rows.clone()].as_chunks::<LANES>().0[..chunks];
    let mut first = 0;
    while first < columns.len() {
        let width = match columns.len() - first {
            left if left >= COLUMNS => COLUMNS,
            left if left >= 4 => 4,
            _ => 1,
        };
        match width {
            COLUMNS => add_group::<C, COLUMNS>(
                std::array::from_fn(|g| block(first + g)),
                std::array::from_fn(|g| w[first + g]),
                acc16,
            ),
            4 => add_group::<C, 4>(
                std::array::from_fn(|g| block(first + g)),
                std::array::from_fn(|g| w[first + g]),
                acc16,
            ),
            _ => add_group::<C, 1>([block(first)], [w[first]], acc16),
        }
        first += width;
    }
    let mut finite = true;
    for a in acc16.iter() {
        for v in a {
            finite &= v.is_finite();
        }
    }
    finite.then_some(chunks * LANES)
}
