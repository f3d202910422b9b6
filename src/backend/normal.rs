//! Counter-based standard normal numbers for n-sized random matrices.
//!
//! Entry `index` of stream `stream` under `key` is a pure function of the three numbers:
//! SplitMix64 outputs turned into uniforms by bit operations, then Box–Muller with the
//! logarithm, sine and cosine evaluated here by fixed polynomials (errors ~1e-16, branch-free
//! so the CPU kernel vectorizes). A matrix of draws is therefore the same whatever the thread
//! split, the SIMD width or the platform, and a CUDA kernel can produce the identical stream.
//! Draws come in pairs: entries 2i and 2i+1 share one Box–Muller transform.

/// The SplitMix64 increment (2⁶⁴/φ).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
/// 1.0 in the exponent field of an f64.
const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;

/// The SplitMix64 output function: a bijective 64-bit mix.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator state of one stream (one matrix column) under `key`.
#[inline(always)]
pub fn stream_base(key: u64, stream: u64) -> u64 {
    mix(key ^ mix(stream.wrapping_add(GAMMA)))
}

/// Uniform in [0, 1) from the top 52 bits (exact: mantissa bits under the exponent of 1).
#[inline(always)]
fn unit(h: u64) -> f64 {
    f64::from_bits((h >> 12) | ONE_BITS) - 1.0
}

/// p(x) = c[0] + x·(c[1] + x·(…)) with fused multiply-adds.
#[inline(always)]
fn horner<const K: usize>(x: f64, c: [f64; K]) -> f64 {
    let mut p = c[K - 1];
    for i in (0..K - 1).rev() {
        p = p.mul_add(x, c[i]);
    }
    p
}

/// ln(u) for a normal positive u: u = 2^e·m with m in [√½, √2), ln m = 2·atanh(s) with
/// s = (m − 1)/(m + 1), |s| ≤ 0.172, summed to s¹⁷.
#[inline(always)]
fn ln(u: f64) -> f64 {
    let bits = u.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as f64 - 1023.0;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | ONE_BITS);
    let big = m > std::f64::consts::SQRT_2;
    let (m, e) = match big {
        true => (0.5 * m, exponent + 1.0),
        false => (m, exponent),
    };
    let s = (m - 1.0) / (m + 1.0);
    let odd = horner(
        s * s,
        [
            1.0,
            1.0 / 3.0,
            1.0 / 5.0,
            1.0 / 7.0,
            1.0 / 9.0,
            1.0 / 11.0,
            1.0 / 13.0,
            1.0 / 15.0,
            1.0 / 17.0,
        ],
    );
    e.mul_add(std::f64::consts::LN_2, 2.0 * s * odd)
}

/// 1/k!.
const fn inverse_factorial(k: u32) -> f64 {
    let mut f = 1.0;
    let mut i = 2;
    while i <= k {
        f *= i as f64;
        i += 1;
    }
    1.0 / f
}

/// Taylor coefficients of sin θ/θ and cos θ in θ².
const SIN: [f64; 9] = taylor(1);
const COS: [f64; 9] = taylor(0);

/// (−1)^i/(2i + first)! for i = 0..9.
const fn taylor(first: u32) -> [f64; 9] {
    let mut c = [0.0; 9];
    let mut i = 0;
    while i < 9 {
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        c[i] = sign * inverse_factorial(2 * i as u32 + first);
        i += 1;
    }
    c
}

/// (sin 2πt, cos 2πt) for t in [0, 1): the quadrant q = round(4t), θ = (4t − q)·π/2 in
/// [−π/4, π/4], Taylor series to θ¹⁷ and θ¹⁶, then the quadrant's swap and signs.
#[inline(always)]
fn sincos_turns(t: f64) -> (f64, f64) {
    let x = 4.0 * t;
    let q = (x + 0.5).floor();
    let theta = (x - q) * std::f64::consts::FRAC_PI_2;
    let t2 = theta * theta;
    let sin = theta * horner(t2, SIN);
    let cos = horner(t2, COS);
    // q = 4 is the same angle as q = 0.
    let swap = q == 1.0 || q == 3.0;
    let (s, c) = if swap { (cos, sin) } else { (sin, cos) };
    let s = if q == 2.0 || q == 3.0 { -s } else { s };
    let c = if q == 1.0 || q == 2.0 { -c } else { c };
    (s, c)
}

/// Entries 2·pair and 2·pair + 1 of the stream starting at `base`.
#[inline(always)]
pub fn normal_pair(base: u64, pair: u64) -> (f64, f64) {
    let h1 = mix(base.wrapping_add((2 * pair + 1).wrapping_mul(GAMMA)));
    let h2 = mix(base.wrapping_add((2 * pair + 2).wrapping_mul(GAMMA)));
    // u1 in (0, 1] (its logarithm is finite), u2 in [0, 1).
    let radius = (-2.0 * ln(1.0 - unit(h1))).sqrt();
    let (sin, cos) = sincos_turns(unit(h2));
    (radius * cos, radius * sin)
}

/// Entry `index` of stream `stream` under `key` (for host-side checks and small draws).
pub fn normal(key: u64, stream: u64, index: u64) -> f64 {
    let (a, b) = normal_pair(stream_base(key, stream), index / 2);
    if index.is_multiple_of(2) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_polynomials_match_libm() {
        for i in 0..10_000u64 {
            let t = unit(mix(i));
            let (s, c) = sincos_turns(t);
            let (ls, lc) = libm::sincos(2.0 * std::f64::consts::PI * t);
            assert!((s - ls).abs() < 1e-15 && (c - lc).abs() < 1e-15, "t = {t}");
            let u = 1.0 - t;
            assert!(
                (ln(u) - libm::log(u)).abs() <= 1e-15 * libm::log(u).abs().max(1e-3),
                "u = {u}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert!((ln(f64::EPSILON) - libm::log(f64::EPSILON)).abs() < 1e-13);
    }

    #[test]
    fn moments_and_independence_of_streams() {
        let draws: Vec<f64> = (0..100_000).map(|i| normal(7, 3, i)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
        let other: Vec<f64> = (0..100_000).map(|i| normal(7, 4, i)).collect();
        let corr = draws.iter().zip(&other).map(|(a, b)| a * b).sum::<f64>() / draws.len() as f64;
        assert!(corr.abs() < 0.01, "streams correlate: {corr}");
        let neighbours = draws.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / draws.len() as f64;
        assert!(
            neighbours.abs() < 0.01,
            "pair members correlate: {neighbours}"
        );
    }
}
