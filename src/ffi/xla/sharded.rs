//! The XLA FFI handler of a sharded step inside `jax.shard_map` (`lre.jax_sharded`). A custom
//! call cannot wait for a collective of the other shards, so a step is split into rounds: the
//! call replays the already-reduced sums it is given for the step's reductions over n and, at
//! the first reduction it has no sum for, hands out its partial sums and abandons the step
//! (nothing changes, as with a failing all-reduce callback); JAX adds the shards' partial sums
//! with `psum` and calls again, until a call runs the whole step. Every shard sees the same
//! sums, so all shards make the same reductions and finish in the same round.
//!
//! `lre_xla_sharded_step(state, arrays…, grads, params, learning_rate, sums, filled) ->
//! (state', arrays'…, updates, skipped, partial, filled', done)`: `sums` (float64[C]) holds the
//! step's reduced sums so far, the reductions one after another, in its first `filled` (int32)
//! values. A call that needs another sum writes this shard's partial sums at `partial[filled..
//! filled']` (zeros elsewhere, so JAX adds them into `sums` with one `psum`), returns the
//! unchanged state and zero updates, and `done` = 0. A call that completes the step returns
//! what `lre_xla_step` returns, zero `partial`, `filled'` = `filled` and `done` = 1. A step
//! whose sums outgrow C fails with `LRE_ERR_BUFFER_TOO_SMALL`.

use super::c_api::{self, CallFrame, XlaError};
use super::frame::{Element, Frame};
use super::handlers::{conclude, lent_optimizer, run, step_inputs, unchanged, wrong_float};
use crate::backend::Scalar;
use crate::error::{Error, Result, Status};
use std::sync::{Arc, Mutex, PoisonError};

/// One round of a sharded step (see the module documentation).
///
/// # Safety
/// Called by XLA with a valid call frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_xla_sharded_step(frame: *mut CallFrame) -> *mut XlaError {
    // SAFETY: forwarded caller contract.
    unsafe { run(frame, sharded_step) }
}

/// Results after the state's: updates, skipped, partial, filled', done.
const TRAILING_RESULTS: usize = 5;

/// The parameters' dtype is that of `updates`, the first result after the state's.
fn sharded_step(f: &Frame<'_>) -> Result<()> {
    let updates = f.num_results().saturating_sub(TRAILING_RESULTS);
    match f.result_dtype(updates, "updates")? {
        c_api::DTYPE_F32 => sharded_typed::<f32>(f),
        c_api::DTYPE_F64 => sharded_typed::<f64>(f),
        other => Err(wrong_float("updates", other)),
    }
}

/// The all-reduce of one round: answers from the reduced sums, then records the first partial
/// sums it cannot answer and fails, which abandons the step.
#[derive(Default)]
struct Replay {
    sums: Vec<f64>,
    capacity: usize,
    /// Values of `sums` used so far.
    cursor: usize,
    /// The partial sums of the first reduction without a sum.
    partial: Option<Vec<f64>>,
    /// A reduction that does not fit the sums, described.
    misfit: Option<String>,
}

impl Replay {
    fn answer(&mut self, buf: &mut [f64]) -> bool {
        let end = self.cursor + buf.len();
        if self.partial.is_some() || self.misfit.is_some() {
            return false;
        }
        if end <= self.sums.len() {
            buf.copy_from_slice(&self.sums[self.cursor..end]);
            self.cursor = end;
            return true;
        }
        if self.cursor < self.sums.len() {
            self.misfit = Some(format!(
                "a reduction of {} values starts at value {} of {} reduced sums: the sums \
                 belong to another step or configuration",
                buf.len(),
                self.cursor,
                self.sums.len()
            ));
        } else if end > self.capacity {
            self.misfit = Some(format!(
                "this step reduces more than the {} values the sums buffer holds: create the \
                 state with a larger sums_capacity",
                self.capacity
            ));
        } else {
            self.partial = Some(buf.to_vec());
        }
        false
    }
}

fn sharded_typed<T: Scalar + Element>(f: &Frame<'_>) -> Result<()> {
    let capacity = f.result_len(0, "state")?;
    let (mut opt, lent) = lent_optimizer::<T>(f)?;
    let (grads, params) = step_inputs(f, &mut opt, lent, capacity)?;
    let sums = f.arg::<f64>(4 + lent, "sums", None)?;
    let filled = f.arg::<i32>(5 + lent, "filled", Some(1))?[0];
    let filled = usize::try_from(filled)
        .ok()
        .filter(|&k| k <= sums.len())
        .ok_or_else(|| {
            Error::invalid(format!(
                "filled = {filled}; expected 0..={} (the sums buffer's length)",
                sums.len()
            ))
        })?;
    let replay = Arc::new(Mutex::new(Replay {
        sums: sums[..filled].to_vec(),
        capacity: sums.len(),
        cursor: 0,
        partial: None,
        misfit: None,
    }));
    let answering = Arc::clone(&replay);
    opt.set_allreduce(Box::new(move |buf| {
        answering
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answer(buf)
    }))?;
    let mut x = params.to_vec();
    let stepped = opt.step(&mut x, grads);
    let mut replay = std::mem::take(&mut *replay.lock().unwrap_or_else(PoisonError::into_inner));
    if let Some(misfit) = replay.misfit {
        return Err(Error::new(Status::LRE_ERR_BUFFER_TOO_SMALL, misfit));
    }
    let (partial_at, n) = (3 + lent, opt.ndim());
    let partial_out = f.result::<f64>(partial_at, "partial", sums.len())?;
    partial_out.fill(0.0);
    let (filled_out, done) = match (stepped, replay.partial.take()) {
        (Err(e), Some(partial)) if e.status == Status::LRE_ERR_CALLBACK => {
            drop(opt);
            unchanged(f, f.result::<T>(1 + lent, "updates", n)?)?;
            f.result::<i32>(2 + lent, "skipped", 1)?[0] = 0;
            let end = replay.cursor + partial.len();
            partial_out[replay.cursor..end].copy_from_slice(&partial);
            (end, false)
        }
        (Ok(()), None) if replay.cursor != filled => {
            return Err(Error::invalid(format!(
                "the step used {} of the {filled} reduced sums it was given: the sums belong to \
                 another step or configuration",
                replay.cursor
            )));
        }
        (stepped, _) => {
            conclude(f, opt, stepped, &x, params, lent, capacity)?;
            (filled, true)
        }
    };
    let filled_out = i32::try_from(filled_out)
        .map_err(|_| Error::invalid("the sums buffer is longer than int32 can count"))?;
    f.result::<i32>(partial_at + 1, "filled'", 1)?[0] = filled_out;
    f.result::<i32>(partial_at + 2, "done", 1)?[0] = i32::from(done);
    Ok(())
}
