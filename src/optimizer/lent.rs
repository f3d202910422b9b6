//! Stepping in caller memory: an optimizer whose n-sized buffers (the `Extent::Vectors` ones of
//! its layout) are memory its caller lends for one call, and whose other state travels as a
//! small state (docs/state-format.md). Lent memory (host slices, or device ranges on a GPU) is
//! borrowed as `LentMemory` that only `src/ffi` creates; it drops the optimizer before its call
//! returns.

use super::Optimizer;
use crate::backend::cpu::VectorStorage;
use crate::backend::{Backend, Cpu, LentMemory, Scalar};
use crate::elem::ElemType;
use crate::error::{Error, Result, Status};
use crate::state::layout::Extent;
use crate::state::{Decoder, Encoder};
use std::io::{self, Write};

impl<T: Scalar, V: VectorStorage<T>> Optimizer<Cpu<T, V>> {
    /// The optimizer of a small state (or a full blob) whose n-sized buffers are `lent`: one
    /// slice per n-sized buffer of the layout, in layout order, each of exactly its bytes. A
    /// full blob's n-sized data is copied into the lent memory; a small state's already is
    /// there. Configurations whose state follows the batch size are refused
    /// (`LRE_ERR_UNSUPPORTED`).
    pub fn from_lent(state: &[u8], lent: Vec<&'static mut [u8]>) -> Result<Self> {
        let dec = Decoder::new(state)?;
        let opt = Self::from_state_header(&dec)?;
        opt.lend_state(dec, lent.into_iter().map(LentMemory::Host).collect())
    }

    /// The names of the n-sized buffers a small state (or a full blob) keeps in caller memory,
    /// in order: how many arrays come with it.
    pub fn lent_names(state: &[u8]) -> Result<Vec<String>> {
        let opt = Self::from_state_header(&Decoder::new(state)?)?;
        let names = opt
            .lent_buffers()?
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        Ok(names)
    }
}

impl<B: Backend + 'static> Optimizer<B> {
    /// This optimizer (created from the header of `dec`) restored from `dec` with its n-sized
    /// buffers in `lent`: one region per n-sized buffer of the layout, in layout order, each of
    /// exactly its bytes. A full blob's n-sized data is copied into the lent memory; a small
    /// state's already is there. Configurations whose state follows the batch size, or that
    /// keep a lent buffer in their own memory, are refused (`LRE_ERR_UNSUPPORTED`).
    pub fn lend_state(mut self, mut dec: Decoder<'_>, lent: Vec<LentMemory>) -> Result<Self> {
        let sizes: Vec<usize> = lent.iter().map(LentMemory::len).collect();
        self.check_lent(&sizes)?;
        let names: Vec<String> = self
            .lent_buffers()?
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        for (name, memory) in names.iter().zip(lent) {
            dec.lend(name, memory);
        }
        self.restore(&mut dec)?;
        if let Some(name) = dec.untaken_lent() {
            return Err(Error::unsupported(format!(
                "state buffer {name}: this configuration keeps it in its own memory, so it \
                 cannot step in caller memory"
            )));
        }
        Ok(self)
    }

    /// Fails unless `sizes` are the byte sizes of this optimizer's n-sized buffers, in layout
    /// order (`LRE_ERR_INVALID_ARGUMENT` naming the first buffer that differs).
    pub fn check_lent(&self, sizes: &[usize]) -> Result<()> {
        let expected = self.lent_buffers()?;
        if sizes.len() != expected.len() {
            let names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
            return Err(Error::invalid(format!(
                "{} lent buffers given; this optimizer keeps {} n-sized buffers: [{}]",
                sizes.len(),
                expected.len(),
                names.join(", ")
            )));
        }
        match expected
            .iter()
            .zip(sizes)
            .find(|((_, want), got)| want != *got)
        {
            Some(((name, want), got)) => Err(Error::invalid(format!(
                "lent buffer {name} has {got} bytes; it needs {want}"
            ))),
            None => Ok(()),
        }
    }

    /// The n-sized buffers caller memory holds when stepping in it (name, bytes), in order;
    /// `LRE_ERR_UNSUPPORTED` for state that follows the batch size.
    pub fn lent_buffers(&self) -> Result<Vec<(&str, usize)>> {
        let layout = self.state_layout();
        if let Some(b) = layout
            .buffers
            .iter()
            .find(|b| b.extent == Extent::BatchSized)
        {
            return Err(Error::unsupported(format!(
                "the state buffer {} grows with the batch size, so this configuration cannot \
                 keep its state in caller memory",
                b.name
            )));
        }
        if let Some(b) = layout
            .buffers
            .iter()
            .find(|b| matches!(b.extent, Extent::StoredVectors(..)))
        {
            return Err(Error::unsupported(format!(
                "the state buffer {} is stored in 16 bits (storage=bf16/f16), which caller \
                 memory cannot hold yet; use the params' dtype for storage",
                b.name
            )));
        }
        layout.lent(self.ndim(), ElemType::from(self.config.dtype))
    }

    /// Writes the small state: everything `save_state` writes, except that the n-sized
    /// buffers in caller memory are written as the slots of their rows.
    pub fn save_small(&self, out: &mut dyn Write) -> io::Result<u64> {
        self.encode(Encoder::lending(
            out,
            &self.config.to_string(),
            self.ndim(),
            B::Elem::DTYPE,
        ))
    }

    /// The small state as a byte vector.
    pub fn small_state(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.save_small(&mut bytes)
            .expect("writing to memory cannot fail");
        bytes
    }

    /// The most bytes `save_small` can write for this configuration and n.
    pub fn small_bound(&self) -> Result<usize> {
        self.state_layout().small_bound(
            self.ndim(),
            ElemType::from(self.config.dtype),
            self.config.to_string().len(),
        )
    }
}

/// The error for a small state that does not fit the caller's buffer.
pub fn too_small(needed: usize, capacity: usize) -> Error {
    Error::new(
        Status::LRE_ERR_BUFFER_TOO_SMALL,
        format!("the small state needs {needed} bytes but the buffer holds {capacity}"),
    )
}
