//! Saving and loading an optimizer's complete state (docs/state-format.md).

use super::Optimizer;
use crate::backend::cpu::VectorStorage;
use crate::backend::{Backend, Cpu, Scalar};
use crate::error::{Error, Result, Status};
use crate::rng::Rng;
use crate::spec::{Config, Device};
use crate::state::{self, Decoder, Encoder};
use std::io::{self, Write};
use std::path::Path;

impl<T: Scalar, V: VectorStorage<T>> Optimizer<Cpu<T, V>> {
    /// Recreates an optimizer — configuration included — from a saved state.
    pub fn from_state(bytes: &[u8]) -> Result<Self> {
        let mut dec = Decoder::new(bytes)?;
        let mut opt = Self::from_state_header(&dec)?;
        opt.restore(&mut dec)?;
        Ok(opt)
    }

    /// A fresh optimizer with the configuration, dtype and n a blob records.
    pub(super) fn from_state_header(dec: &Decoder<'_>) -> Result<Self> {
        let config = config_for::<T>(dec, Device::Cpu)?;
        // A size the blob records that no optimizer can have is a bad state, not a bad argument.
        Self::from_config(config, dec.n).map_err(|e| {
            if e.status == Status::LRE_ERR_INVALID_ARGUMENT {
                Error::new(Status::LRE_ERR_STATE, format!("the state's {}", e.message))
            } else {
                e
            }
        })
    }

    /// Recreates an optimizer from a file written by `save_file`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_state(&state::file::read(path)?)
    }
}

/// The configuration recorded in a state blob, for an optimizer of element type `T` on
/// `device` (a state resumes on any device: the format does not depend on it).
pub(super) fn config_for<T: Scalar>(dec: &Decoder<'_>, device: Device) -> Result<Config> {
    if dec.dtype != T::DTYPE {
        return Err(Error::new(
            Status::LRE_ERR_STATE,
            format!(
                "the state has dtype={}; this is an optimizer for {}",
                dec.dtype,
                T::DTYPE
            ),
        ));
    }
    let mut config = saved_config(dec)?;
    config.device = device;
    Ok(config)
}

/// The configuration recorded in a state blob.
fn saved_config(dec: &Decoder<'_>) -> Result<Config> {
    Config::parse(&dec.spec).map_err(|e| {
        Error::new(
            Status::LRE_ERR_STATE,
            format!("the state's spec does not parse: {}", e.message),
        )
    })
}

/// What differs between a saved configuration and an optimizer's, lr, weight_decay, threads and
/// device aside (lr and weight_decay are state a schedule changes; threads and the device belong
/// to the machine: a state written on a GPU resumes on the CPU and the reverse).
fn config_differences(saved: &Config, current: &Config) -> Vec<String> {
    type Show = fn(&Config) -> String;
    let keys: [(&str, Show); 11] = [
        ("curvature", |c| c.curvature.to_string()),
        ("basis", |c| c.basis.to_string()),
        ("chain", |c| {
            let members: Vec<String> = c.chain.iter().map(|m| m.to_string()).collect();
            format!("[{}]", members.join(", "))
        }),
        ("update_freq", |c| c.update_freq.to_string()),
        ("init_steps", |c| c.init_steps.to_string()),
        ("symmetrize", |c| c.symmetrize.to_string()),
        ("seed", |c| c.seed.to_string()),
        ("global_ndim", |c| format!("{:?}", c.global_ndim)),
        ("shard_offset", |c| c.shard_offset.to_string()),
        ("diagonal", |c| c.diagonal.to_string()),
        ("warmup", |c| c.warmup.to_string()),
    ];
    keys.iter()
        .filter_map(|(key, show)| {
            let (a, b) = (show(saved), show(current));
            (a != b).then(|| format!("{key}: the state has {a}, this optimizer {b}"))
        })
        .collect()
}

impl<B: Backend + 'static> Optimizer<B> {
    /// Writes the complete state (docs/state-format.md) to `out`; returns the number of bytes.
    pub fn save_state(&self, out: &mut dyn Write) -> io::Result<u64> {
        self.encode(Encoder::new(
            out,
            &self.config.to_string(),
            self.ndim(),
            B::Elem::DTYPE,
        ))
    }

    /// Writes every buffer to `enc` and finishes the blob.
    pub(super) fn encode(&self, mut enc: Encoder<'_>) -> io::Result<u64> {
        enc.push("optimizer");
        enc.put_u64("step", self.step);
        enc.put_u64("rank", self.last_rank as u64);
        enc.put(
            "eigenvalues",
            &[self.last_eigenvalues.len()],
            &self.last_eigenvalues,
        );
        enc.put("rng", &[7], &self.rng.to_words());
        enc.pop();
        enc.push("curvature");
        self.curvature.save(&self.backend, &mut enc);
        enc.pop();
        enc.push("basis");
        self.basis.save(&self.backend, &mut enc);
        enc.pop();
        self.chain.save(&mut enc);
        if let Some(diagonal) = &self.diagonal {
            enc.push("diagonal");
            diagonal.save(&mut enc);
            enc.pop();
        }
        enc.finish()
    }

    /// Size in bytes of the state `save_state` writes.
    pub fn state_size(&self) -> u64 {
        let counting = Encoder::counting(&self.config.to_string(), self.ndim(), B::Elem::DTYPE);
        self.encode(counting).expect("counting cannot fail")
    }

    /// The complete state as a byte vector.
    pub fn state(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.state_size() as usize);
        self.save_state(&mut bytes)
            .expect("writing to memory cannot fail");
        bytes
    }

    /// Replaces this optimizer's state with a saved one. The blob must come from an optimizer
    /// with the same configuration (lr, weight_decay and threads aside), n and dtype; lr and
    /// weight_decay are restored from it. On any error nothing changes.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let mut dec = Decoder::new(bytes)?;
        let saved = saved_config(&dec)?;
        let mut differences = config_differences(&saved, &self.config);
        if dec.dtype != B::Elem::DTYPE {
            differences.push(format!(
                "dtype: the state has {}, this optimizer {}",
                dec.dtype,
                B::Elem::DTYPE
            ));
        }
        if dec.n != self.ndim() {
            differences.push(format!(
                "n: the state has {}, this optimizer {}",
                dec.n,
                self.ndim()
            ));
        }
        if !differences.is_empty() {
            return Err(Error::new(
                Status::LRE_ERR_STATE,
                format!(
                    "the state does not match this optimizer: {}",
                    differences.join("; ")
                ),
            ));
        }
        let mut config = self.config.clone();
        config.lr = saved.lr;
        config.weight_decay = saved.weight_decay;
        let mut fresh = Optimizer::new(config, self.backend.clone())?;
        // A step in progress is not state: loading abandons it.
        fresh.restore(&mut dec)?;
        *self = fresh;
        Ok(())
    }

    /// Writes the state to `path` atomically (a crash mid-save leaves the old file intact).
    pub fn save_file(&self, path: &Path) -> Result<()> {
        state::file::write_atomically(path, |out| self.save_state(out).map(|_| ()))
    }

    /// Loads a state written by `save_file` (see `load_state`).
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        self.load_state(&state::file::read(path)?)
    }

    /// Reads every buffer of a blob into this freshly built optimizer.
    pub(super) fn restore(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        dec.push("optimizer");
        self.step = dec.get_u64("step")?;
        self.last_rank = usize::try_from(dec.get_u64("rank")?).unwrap_or(usize::MAX);
        self.last_eigenvalues = dec.get::<f64>("eigenvalues")?.0;
        let words: [u64; 7] = dec
            .get_shaped::<u64>("rng", &[7])?
            .try_into()
            .expect("shape checked");
        self.rng = Rng::from_words(&words);
        dec.pop();
        dec.push("curvature");
        self.curvature.load(&self.backend, dec)?;
        dec.pop();
        dec.push("basis");
        self.basis.load(&self.backend, dec)?;
        dec.pop();
        self.chain.load(dec)?;
        if self.diagonal.is_some() {
            dec.push("diagonal");
            self.diagonal = Some(super::diagonal_adam::DiagonalAdam::load(dec)?);
            dec.pop();
        }
        dec.finish()
    }
}
