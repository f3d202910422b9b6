//! The 16-bit storage formats of a GGT window (`ggt(storage=bf16)` / `storage=f16`): bfloat16
//! (8 exponent bits, 7 mantissa bits: f32's range) and IEEE binary16 (5 and 10: largest finite
//! value 65504).
//!
//! A column is written once: scaled by a power of two chosen from its largest magnitude
//! ([`Half::scale_for`], kept per column in f64), then rounded to nearest, ties to even,
//! directly from f64 (one rounding; the scaling is exact). Reading widens to f32 exactly. Only
//! finite codes are ever written; loading a state refuses the others ([`Half::is_finite_code`]).

use crate::elem::ElemType;

/// A bfloat16 value: the upper half of an f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

/// An IEEE 754 binary16 value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16(pub u16);

/// `2^k` for |k| < 1023.
#[inline(always)]
fn pow2(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Binary exponent of a finite nonzero f64 (of its normal form); very negative for 0.
#[inline(always)]
fn exponent(y: f64) -> i32 {
    ((y.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// y rounded to `mantissa` fraction bits, ties to even, with exponents below `min_exp` sharing
/// the subnormal quantum 2^(min_exp − mantissa). Exact arithmetic in f64 for |y| ≥ 2^-1000.
#[inline(always)]
fn round_to(y: f64, mantissa: i32, min_exp: i32) -> f64 {
    let q = exponent(y).max(min_exp) - mantissa;
    (y * pow2(-q)).round_ties_even() * pow2(q)
}

/// A 16-bit floating-point storage format.
pub trait Half: Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// Its element type in the state format.
    const TYPE: ElemType;
    /// The exponent the largest magnitude of a column is scaled to (it lands in
    /// [2^TOP, 2^(TOP+1)), below the format's overflow threshold).
    const TOP: i32;
    fn bits(self) -> u16;
    fn from_bits(bits: u16) -> Self;
    /// The value, exactly (finite codes).
    fn to_f32(self) -> f32;
    /// y rounded to nearest, ties to even (|y| below the overflow threshold).
    fn round(y: f64) -> Self;
    /// Whether `bits` encodes a finite value.
    fn is_finite_code(bits: u16) -> bool;

    /// The power of two a column whose largest magnitude is `max_abs` is multiplied by before
    /// rounding: its largest entry then lies in [2^TOP, 2^(TOP+1)) (1 for a zero column).
    fn scale_for(max_abs: f64) -> f64 {
        if max_abs == 0.0 || !max_abs.is_finite() {
            1.0
        } else {
            pow2(Self::TOP - exponent(max_abs))
        }
    }
}

impl Half for Bf16 {
    const TYPE: ElemType = ElemType::Bf16;
    /// f32's range: a column is scaled to the same top binade as f16's (any fixed choice far
    /// from both ends works), so the two formats behave alike.
    const TOP: i32 = 14;

    #[inline(always)]
    fn bits(self) -> u16 {
        self.0
    }
    #[inline(always)]
    fn from_bits(bits: u16) -> Self {
        Bf16(bits)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
    #[inline(always)]
    fn round(y: f64) -> Self {
        // The rounded value is a bfloat16, so as an f32 it is exact and its upper half is it.
        Bf16(((round_to(y, 7, -126) as f32).to_bits() >> 16) as u16)
    }
    fn is_finite_code(bits: u16) -> bool {
        bits & 0x7f80 != 0x7f80
    }
}

/// 2⁻²⁴, binary16's subnormal quantum.
const F16_QUANTUM: f32 = 1.0 / (1u32 << 24) as f32;

impl Half for F16 {
    const TYPE: ElemType = ElemType::F16;
    /// Largest finite binary16 is 65504 < 2^16: the top binade [2^14, 2^15) leaves a factor of
    /// two of headroom, and entries down to 2^-29 of the largest stay normal.
    const TOP: i32 = 14;

    #[inline(always)]
    fn bits(self) -> u16 {
        self.0
    }
    #[inline(always)]
    fn from_bits(bits: u16) -> Self {
        F16(bits)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        // Normal: exponent and mantissa shifted into f32's fields, the exponent rebiased by an
        // integer add (112 = 127 − 15). Zero and subnormal: the mantissa counts 2⁻²⁴. Both are
        // computed and one selected, so the loops that read a window stay branch-free (an
        // f32 multiply by 2¹¹² instead would meet f32 subnormals, slow on x86).
        let h = self.0 as u32;
        let normal = f32::from_bits(((h & 0x7fff) << 13) + (112 << 23));
        let subnormal = (h & 0x3ff) as f32 * F16_QUANTUM;
        let magnitude = if h & 0x7c00 == 0 { subnormal } else { normal };
        f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
    }
    #[inline(always)]
    fn round(y: f64) -> Self {
        let r = round_to(y, 10, -14);
        let sign = ((r.to_bits() >> 48) & 0x8000) as u16;
        let a = r.abs();
        let magnitude = if a >= pow2(-14) {
            // Normal: f32's fields, rebiased (r is exact in f32).
            (((a as f32).to_bits() >> 13) - (112 << 10)) as u16
        } else {
            // Subnormal: a multiple of 2^-24 (2^-14 itself, after rounding up, is code 0x0400).
            (a * pow2(24)) as u16
        };
        F16(sign | magnitude)
    }
    fn is_finite_code(bits: u16) -> bool {
        bits & 0x7c00 != 0x7c00
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every finite code of format H with its value, sorted by value (+0 only).
    fn finite_values<H: Half>() -> Vec<(f64, u16)> {
        let mut v: Vec<(f64, u16)> = (0..=u16::MAX)
            .filter(|&b| H::is_finite_code(b) && b != 0x8000)
            .map(|b| (H::from_bits(b).to_f32() as f64, b))
            .collect();
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        v
    }

    /// The nearest finite value, ties to the code with an even last bit: the reference
    /// rounding, by search over every code.
    fn reference(values: &[(f64, u16)], y: f64) -> f64 {
        let i = values.partition_point(|&(v, _)| v < y);
        if i < values.len() && values[i].0 == y {
            return y;
        }
        let ((lo, lo_code), (hi, _)) = (values[i - 1], values[i]);
        match (y - lo).partial_cmp(&(hi - y)).unwrap() {
            std::cmp::Ordering::Less => lo,
            std::cmp::Ordering::Greater => hi,
            std::cmp::Ordering::Equal if lo_code & 1 == 0 => lo,
            std::cmp::Ordering::Equal => hi,
        }
    }

    fn check_format<H: Half>(limit: f64) {
        let values = finite_values::<H>();
        // Every finite code round-trips exactly (both zeros keep their sign).
        for b in (0..=u16::MAX).filter(|&b| H::is_finite_code(b)) {
            let v = H::from_bits(b).to_f32() as f64;
            assert_eq!(H::round(v).bits(), b, "code {b:#06x} = {v:e}");
        }
        // Midpoints of neighbours (ties), and the f64 just above and below each.
        for pair in values.windows(2) {
            let (lo, hi) = (pair[0].0, pair[1].0);
            if hi > limit {
                break;
            }
            let mid = 0.5 * (lo + hi);
            for y in [mid, mid.next_up(), mid.next_down()] {
                let want = reference(&values, y);
                let got = H::round(y).to_f32() as f64;
                assert_eq!(got, want, "{y:e} between {lo:e} and {hi:e}");
            }
        }
        // Every f32 edge case: zeros, subnormals, min normal, powers of two and their
        // neighbours, up to the limit.
        let mut edges = vec![
            0.0f32,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x7fffff),
        ];
        for e in -149..128 {
            let p = 2f32.powi(e);
            edges.extend([p, p.next_up(), p.next_down(), 1.5 * p]);
        }
        for x in edges {
            for y in [x as f64, -(x as f64)] {
                if y.abs() < limit && y.is_finite() {
                    assert_eq!(H::round(y).to_f32() as f64, reference(&values, y), "{y:e}");
                }
            }
        }
        // A pseudo-random sweep over f32 bit patterns.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = f32::from_bits((state >> 32) as u32) as f64;
            if x.is_finite() && x.abs() < limit {
                assert_eq!(H::round(x).to_f32() as f64, reference(&values, x), "{x:e}");
            }
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even_and_round_trips() {
        // Below the largest finite bfloat16: the scale keeps columns far below it.
        check_format::<Bf16>(f32::MAX as f64 / 2.0);
    }

    #[test]
    fn f16_rounds_to_nearest_even_and_round_trips() {
        check_format::<F16>(65504.0);
    }

    #[test]
    fn scale_puts_the_largest_entry_in_the_top_binade() {
        for max in [1e-30, 3.0e-8, 1.0, 65504.0, 1e30, f32::MAX as f64] {
            let s = F16::scale_for(max);
            assert!((16384.0..32768.0).contains(&(max * s)), "{max:e}");
            assert_eq!(s, pow2(exponent(s)), "power of two");
            // Rounding the scaled maximum never overflows.
            assert!(F16::round(max * s).to_f32().is_finite());
        }
        assert_eq!(Bf16::scale_for(0.0), 1.0);
    }

    #[test]
    fn non_finite_codes_are_recognized() {
        assert!(!F16::is_finite_code(0x7c00) && !F16::is_finite_code(0xfe01));
        assert!(F16::is_finite_code(0x7bff));
        assert!(!Bf16::is_finite_code(0x7f80) && !Bf16::is_finite_code(0xffc1));
        assert!(Bf16::is_finite_code(0x7f7f));
    }
}
