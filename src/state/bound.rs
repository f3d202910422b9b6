//! An upper bound of the size of a state blob, from the configuration and n alone.
//!
//! Fixed-shape callers (the XLA handlers behind `lre.jax`) keep the blob in a buffer whose size
//! must be known before the first step, while an optimizer's state grows with use (GGT's window
//! doubles up to history_size). The bound counts, per component, the most n-sized rows, small
//! f64/u64 elements and buffers its `save` can write; it is generous for the small parts (they
//! are O(k²), negligible next to the n-sized rows) and tight for the rows. tests/state_bound.rs
//! checks it against real blobs of every configuration it accepts.

use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::spec::Config;

/// What one component can write at most.
#[derive(Default, Clone, Copy)]
struct Parts {
    /// n-sized rows in the optimizer's dtype.
    rows: usize,
    /// Elements of 8 bytes (f64 or u64) that do not scale with n.
    small: usize,
    /// Number of buffers (each has a header).
    buffers: usize,
}

impl std::ops::Add for Parts {
    type Output = Parts;
    fn add(self, o: Parts) -> Parts {
        Parts {
            rows: self.rows + o.rows,
            small: self.small + o.small,
            buffers: self.buffers + o.buffers,
        }
    }
}

/// Bytes of one buffer header beyond its elements: tag, name length, a name of at most
/// `MAX_NAME` bytes, element type, rank and up to four u64 dimensions.
const MAX_NAME: usize = 64;
const BUFFER_HEADER: usize = 1 + 4 + MAX_NAME + 1 + 1 + 4 * 8;

/// The most bytes `save_state` can write for an optimizer with this configuration and n.
/// Configurations whose state depends on more than the configuration (batch sizes) are refused
/// with `LRE_ERR_UNSUPPORTED`.
pub fn state_bound(config: &Config, n: usize) -> Result<usize> {
    let (curvature, columns) = curvature_parts(&config.curvature, config.update_freq)?;
    // Asymmetric corrections Y·Zᵀ of the HVP curvatures are kept as column pairs unless
    // symmetrized.
    let paired = !config.symmetrize
        && matches!(
            config.curvature.name(),
            "full_hutchinson_hessian" | "bfgs" | "sr1"
        );
    let (basis, rank) = basis_parts(&config.basis, n, columns, paired)?;
    let k = rank.min(n);
    // optimizer/step, rank, eigenvalues [k], rng [7]
    let optimizer = Parts {
        rows: 0,
        small: 2 + k + 7,
        buffers: 4,
    };
    let mut total = optimizer + curvature + basis;
    for member in &config.chain {
        total = total + inner_parts(member, k)?;
    }
    let spec = config.to_string().len();
    let header = 8 + 4 + (4 + crate::VERSION.len()) + (4 + spec) + 8 + 1;
    let element = match config.dtype {
        crate::backend::Dtype::F32 => 4,
        crate::backend::Dtype::F64 => 8,
    };
    let bytes = header
        + total.buffers * BUFFER_HEADER
        + total.rows * n * element
        + total.small * 8
        + 1 // end tag
        + 4; // checksum
    Ok(bytes)
}

/// The curvature's state and the most correction columns one update hands the basis.
fn curvature_parts(c: &Component, update_freq: u64) -> Result<(Parts, usize)> {
    let f = update_freq as usize;
    Ok(match c.name() {
        // Gradients held since the last correction (f - 1 between steps); the correction has f
        // columns.
        "covariance" => (
            Parts {
                rows: f.saturating_sub(1),
                small: 0,
                buffers: 1,
            },
            f,
        ),
        "covariance_times_loss" => (
            Parts {
                rows: f.saturating_sub(1),
                small: 2,
                buffers: 2,
            },
            f,
        ),
        // x_now and x_prev; a correction has at most two (paired) columns.
        "full_hutchinson_hessian" | "bfgs" | "sr1" => (
            Parts {
                rows: 2,
                small: 0,
                buffers: 2,
            },
            2,
        ),
        "unrolled_gauss_newton" => {
            let h = c.usize("history_size");
            (
                Parts {
                    rows: h,
                    small: h + 2,
                    buffers: 4,
                },
                h,
            )
        }
        name => {
            return Err(Error::new(
                Status::LRE_ERR_UNSUPPORTED,
                format!(
                    "curvature={name} takes per-sample batches, so its state size depends on \
                     the batch size; no fixed state bound exists"
                ),
            ));
        }
    })
}

/// The basis's state and the most basis vectors k it hands the chain.
fn basis_parts(c: &Component, n: usize, columns: usize, paired: bool) -> Result<(Parts, usize)> {
    Ok(match c.name() {
        // history_size entries; an entry is one column, or two for a pair.
        "ggt" => {
            let m = c.usize("history_size") * if paired { 2 } else { 1 };
            let k = m.min(n);
            // window [m, n], alpha/role [m], gram [m, m], coeffs [k, m], eigenvalues [k]
            let parts = Parts {
                rows: m,
                small: 2 * m + m * m + k * m + k,
                buffers: 6,
            };
            (parts, k)
        }
        "identity" => (
            Parts {
                rows: 0,
                small: 1,
                buffers: 1,
            },
            n,
        ),
        // accumulator [n, n], vectors [k, n], values [k], all f64
        "full_matrix" => (
            Parts {
                rows: 0,
                small: 2 * n * n + n,
                buffers: 3,
            },
            n,
        ),
        // Orthonormal columns plus what a pending combination reads (at most the previous
        // basis and the new raw columns), T, values and the pending combination.
        "eigen" | "low_rank" | "common_directions" => {
            let k = (c.usize("rank") + columns).min(n);
            let stored = 2 * k + columns;
            let parts = Parts {
                rows: stored,
                small: 3 * stored * stored + 4 * stored + 4,
                buffers: 8,
            };
            (parts, k)
        }
        // q [l, n], omega [l, n] (nystrom), values [l]
        "randomized_eigen" | "nystrom" => {
            let l = (c.usize("rank") + c.usize("oversampling")).min(n);
            let parts = Parts {
                rows: 2 * l,
                small: l + 2,
                buffers: 5,
            };
            (parts, l)
        }
        "random" => {
            let r = c.usize("rank").min(n);
            let parts = Parts {
                rows: r,
                small: 2,
                buffers: 3,
            };
            (parts, r)
        }
        // x and the AdamG momentum m, [rank, n] each
        "hebbian_learning" => {
            let r = c.usize("rank").min(n);
            let parts = Parts {
                rows: 2 * r,
                small: 2,
                buffers: 4,
            };
            (parts, r)
        }
        other => {
            return Err(Error::new(
                Status::LRE_ERR_UNSUPPORTED,
                format!("basis={other} has no state bound"),
            ));
        }
    })
}

/// An inner optimizer's state at rank k: a few k-vectors, or k×k matrices for the full-matrix
/// members.
fn inner_parts(c: &Component, k: usize) -> Result<Parts> {
    match c.name() {
        "natural_gradient" | "gauss_newton" => Err(Error::new(
            Status::LRE_ERR_UNSUPPORTED,
            format!(
                "{} keeps the last batch's Jacobian, so its state size depends on the batch \
                 size; no fixed state bound exists",
                c.name()
            ),
        )),
        "full_matrix_adam" | "full_matrix_hutchinson_adam" | "full_matrix_bfgs_adam" => Ok(Parts {
            rows: 0,
            small: 2 * k * k + 2 * k + 1,
            buffers: 5,
        }),
        _ => Ok(Parts {
            rows: 0,
            small: 4 * k + 2,
            buffers: 5,
        }),
    }
}
