//! Where an n-sized CPU buffer lives: memory the library owns, or a caller's memory lent for
//! the duration of one call (`src/ffi` creates the lent slices and always drops the optimizer
//! that holds them before the call returns). Lent memory is never reallocated: a buffer that
//! would need to grow beyond it is refused.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// The elements of an n-sized buffer.
#[derive(Debug)]
pub enum Storage<T: 'static> {
    Owned(Vec<T>),
    /// Caller memory; `slot` is this buffer's index among the equal parts of the caller's
    /// buffer it was cut from (the vectors of a `vectors` state buffer), 0 for a whole matrix.
    Lent {
        data: &'static mut [T],
        slot: usize,
    },
}

impl<T> Storage<T> {
    /// The slot of lent memory, None for owned memory.
    pub fn lent_slot(&self) -> Option<usize> {
        match self {
            Storage::Owned(_) => None,
            Storage::Lent { slot, .. } => Some(*slot),
        }
    }
}

impl<T> Deref for Storage<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Storage::Owned(v) => v,
            Storage::Lent { data, .. } => data,
        }
    }
}

impl<T> DerefMut for Storage<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Storage::Owned(v) => v,
            Storage::Lent { data, .. } => data,
        }
    }
}

/// A copy is always owned memory (lent memory has one holder).
impl<T: Clone> Clone for Storage<T> {
    fn clone(&self) -> Self {
        Storage::Owned(self.to_vec())
    }
}

impl<T: PartialEq> PartialEq for Storage<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// What a CPU backend keeps its n-vectors in: `Vec<T>` (owned only: the usual optimizer) or
/// [`Storage`] (also caller memory: an optimizer stepping in lent memory).
pub trait VectorStorage<T: 'static>:
    Deref<Target = [T]> + DerefMut + Send + Sync + fmt::Debug + 'static
{
    fn owned(data: Vec<T>) -> Self;
    /// Lent memory as a vector, or None if this storage holds only owned memory.
    fn lent(data: &'static mut [T], slot: usize) -> Option<Self>
    where
        Self: Sized;
    /// The slot of lent memory, None for owned memory.
    fn slot(&self) -> Option<usize>;
}

impl<T: Send + Sync + fmt::Debug + 'static> VectorStorage<T> for Vec<T> {
    fn owned(data: Vec<T>) -> Self {
        data
    }
    fn lent(_data: &'static mut [T], _slot: usize) -> Option<Self> {
        None
    }
    fn slot(&self) -> Option<usize> {
        None
    }
}

impl<T: Send + Sync + fmt::Debug + 'static> VectorStorage<T> for Storage<T> {
    fn owned(data: Vec<T>) -> Self {
        Storage::Owned(data)
    }
    fn lent(data: &'static mut [T], slot: usize) -> Option<Self> {
        Some(Storage::Lent { data, slot })
    }
    fn slot(&self) -> Option<usize> {
        self.lent_slot()
    }
}
