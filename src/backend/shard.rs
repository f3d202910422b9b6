//! Sharded mode: a backend that holds rows `[offset, offset + n)` of vectors of length
//! `global`, and the host's all-reduce that turns its partial sums over n into global ones.
//!
//! Every reduction over n (`column_dots`, `dot`, `gram`, `cross`, the input check of
//! `load_checked`) computes the local partial sums and hands them to [`Reducer::sum`]; every rank
//! then does the same k-sized work on the same numbers. Every rank makes the same calls with the
//! same lengths, a rank with zero rows included, so the host's collectives never mismatch.

use crate::error::{Error, Result, Status};
use std::sync::{Arc, Mutex, PoisonError};

/// The host's all-reduce: sums the buffer in place across all ranks, every rank receiving the
/// same bits; `false` if it failed.
pub type AllReduce = Box<dyn FnMut(&mut [f64]) -> bool + Send>;

/// Which rows of the global vectors this backend holds, and how partial sums are reduced.
#[derive(Clone)]
pub struct Shard {
    /// Global row of local row 0.
    pub offset: usize,
    /// Length of the global vectors (all ranks together).
    pub global: usize,
    pub reducer: Reducer,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Shard {{ offset: {}, global: {} }}",
            self.offset, self.global
        )
    }
}

/// The all-reduce callback, shared by every clone of a backend (components may keep clones).
#[derive(Clone, Default)]
pub struct Reducer {
    inner: Arc<Mutex<ReducerState>>,
}

#[derive(Default)]
struct ReducerState {
    sum: Option<AllReduce>,
    /// A call failed since the last `take_failure`: later calls of the step are skipped.
    failed: bool,
    /// Calls made and f64 values reduced since creation.
    calls: u64,
    values: u64,
}

impl Reducer {
    fn state(&self) -> std::sync::MutexGuard<'_, ReducerState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or replaces) the all-reduce.
    pub fn set(&self, sum: AllReduce) {
        self.state().sum = Some(sum);
    }

    /// An error unless an all-reduce is registered (a sharded optimizer cannot step without).
    pub fn check_ready(&self) -> Result<()> {
        match self.state().sum {
            Some(_) => Ok(()),
            None => Err(Error::new(
                Status::LRE_ERR_CALL_ORDER,
                "this optimizer is sharded (global_ndim / shard_offset in its spec) but no \
                 all-reduce callback is registered; call lre_optimizer_set_allreduce before the \
                 first step",
            )),
        }
    }

    /// Sums `buf` across ranks in place. After a failed call (until `take_failure`) the callback
    /// is not called again and `buf` becomes NaN: the step is rolled back anyway.
    pub fn sum(&self, buf: &mut [f64]) {
        let mut state = self.state();
        let state = &mut *state;
        if !state.failed {
            state.calls += 1;
            state.values += buf.len() as u64;
            state.failed = match &mut state.sum {
                Some(sum) => !sum(buf),
                None => true,
            };
        }
        if state.failed {
            buf.fill(f64::NAN);
        }
    }

    /// Whether a call failed since the last time this was asked (and forgets it).
    pub fn take_failure(&self) -> bool {
        std::mem::take(&mut self.state().failed)
    }

    /// (calls, f64 values) reduced since creation.
    pub fn traffic(&self) -> (u64, u64) {
        let state = self.state();
        (state.calls, state.values)
    }
}
