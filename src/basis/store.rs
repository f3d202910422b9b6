//! Saving and loading n-sized state: columns of a backend matrix in logical order, and
//! n-vectors. In a small state (docs/state-format.md) a buffer held in caller memory is written
//! as the caller's slots of its rows, and loading with caller memory lent for a buffer makes
//! that memory the buffer's storage.

use crate::backend::Backend;
use crate::error::{Error, Result, Status};
use crate::state::{Decoder, Encoder};

/// Writes the columns `cols` of `m`, in that order, as a [cols, n] buffer.
pub fn put_columns<B: Backend>(
    be: &B,
    enc: &mut Encoder<'_>,
    name: &str,
    m: &B::Matrix,
    cols: &[usize],
) {
    if enc.is_lending() && be.matrix_is_lent(m) {
        return enc.put_lent::<B::Elem>(name, be.ndim(), cols);
    }
    enc.put_rows::<B::Elem>(name, cols.len(), be.ndim(), |i, out| {
        be.column_to_host(m, cols[i], out)
    });
}

/// Reads a buffer written by [`put_columns`] into `m` from column `first` on, growing it to
/// hold at least `min_columns`; returns the columns holding its rows, in order (first.. when
/// read from the blob; the recorded slots when they are in caller memory). Caller memory lent
/// for the buffer becomes `m` ([`adopt_columns`]), which must then hold it from column 0.
pub fn get_columns<B: Backend>(
    be: &B,
    dec: &mut Decoder<'_>,
    name: &str,
    (m, first): (&mut B::Matrix, usize),
    min_columns: usize,
) -> Result<Vec<usize>> {
    if adopt_columns(be, dec, name, m, min_columns)? && first != 0 {
        return Err(Error::unsupported(format!(
            "state buffer {name} starts at column {first} of its matrix; this configuration \
             cannot step in caller memory"
        )));
    }
    if let Some(slots) = dec.lent_slots(name) {
        check_slots(name, &slots, be.matrix_is_lent(m), be.matrix_columns(m))?;
        return Ok(slots);
    }
    let count = dec.shape(name).map_or(0, |shape| shape[0]);
    let want = (first + count).max(min_columns);
    if be.matrix_columns(m) < want {
        be.grow_matrix(m, want)?;
    }
    dec.get_rows::<B::Elem>(name, be.ndim(), |i, data| {
        be.column_from_host(data, m, first + i)
    })?;
    Ok((first..first + count).collect())
}

/// Makes caller memory lent for buffer `name` the storage of `m`: all its columns usable from
/// the start, never grown beyond them, so it must hold `min_columns` (the columns the basis
/// works in; the buffer's declared capacity). False if none was lent.
pub fn adopt_columns<B: Backend>(
    be: &B,
    dec: &mut Decoder<'_>,
    name: &str,
    m: &mut B::Matrix,
    min_columns: usize,
) -> Result<bool> {
    let Some(memory) = dec.take_lent(name) else {
        return Ok(false);
    };
    let lent = be.lend_matrix(memory, name)?;
    let have = be.matrix_columns(&lent);
    if have < min_columns {
        return Err(Error::unsupported(format!(
            "state buffer {name}: this configuration works in {min_columns} columns but \
             {have} are lent, so it cannot step in caller memory"
        )));
    }
    *m = lent;
    Ok(true)
}

/// Writes n-vectors as a [len, n] buffer.
pub fn put_vectors<B: Backend>(be: &B, enc: &mut Encoder<'_>, name: &str, vectors: &[&B::Vector]) {
    let slots: Option<Vec<usize>> = vectors.iter().map(|v| be.vector_slot(v)).collect();
    match slots {
        Some(slots) if enc.is_lending() => enc.put_lent::<B::Elem>(name, be.ndim(), &slots),
        _ => enc.put_rows::<B::Elem>(name, vectors.len(), be.ndim(), |i, out| {
            be.vector_to_host(vectors[i], out)
        }),
    }
}

/// Makes caller memory lent for buffer `name` the storage of `pool` (one vector per slot);
/// false if none was lent.
pub fn adopt_vectors<B: Backend>(
    be: &B,
    dec: &mut Decoder<'_>,
    name: &str,
    pool: &mut Vec<B::Vector>,
) -> Result<bool> {
    match dec.take_lent(name) {
        Some(memory) => {
            *pool = be.lend_vectors(memory, name)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Reads a buffer written by [`put_vectors`] into the first vectors of `pool` (adding vectors
/// as needed), in order; returns how many it held. When they are in caller memory (`pool` from
/// [`adopt_vectors`]) the pool is reordered so that its first vectors are the recorded slots.
pub fn get_vectors<B: Backend>(
    be: &B,
    dec: &mut Decoder<'_>,
    name: &str,
    pool: &mut Vec<B::Vector>,
) -> Result<usize> {
    if let Some(slots) = dec.lent_slots(name) {
        let lent = pool.iter().all(|v| be.vector_slot(v).is_some());
        check_slots(name, &slots, lent, pool.len())?;
        let mut order: Vec<usize> = slots.clone();
        order.extend((0..pool.len()).filter(|s| !slots.contains(s)));
        let mut by_slot: Vec<Option<B::Vector>> =
            std::mem::take(pool).into_iter().map(Some).collect();
        *pool = order
            .into_iter()
            .map(|s| by_slot[s].take().expect("distinct slots"))
            .collect();
        return Ok(slots.len());
    }
    let count = dec.shape(name).map_or(0, |shape| shape[0]);
    while pool.len() < count {
        pool.push(be.vector()?);
    }
    dec.get_rows::<B::Elem>(name, be.ndim(), |i, data| {
        be.vector_from_host(data, &mut pool[i])
    })?;
    Ok(count)
}

/// Recorded slots must be distinct and inside caller memory that was lent.
fn check_slots(name: &str, slots: &[usize], lent: bool, have: usize) -> Result<()> {
    let bad = |why: String| Error::new(Status::LRE_ERR_STATE, format!("buffer {name}: {why}"));
    if !lent && !slots.is_empty() {
        return Err(bad(
            "its rows are in caller memory (a small state) and none was lent for it".into(),
        ));
    }
    for (i, &s) in slots.iter().enumerate() {
        if s >= have || slots[..i].contains(&s) {
            return Err(bad(format!(
                "slot {s} is repeated or outside the {have} lent columns"
            )));
        }
    }
    Ok(())
}

/// [`get_columns`] for a matrix whose buffers sit in blocks of consecutive columns starting at
/// `starts`: a blob's rows are read into the block at `starts[0]`; rows in caller memory must
/// fill one of the blocks from its start. Returns that start and how many rows there are.
pub fn get_block<B: Backend>(
    be: &B,
    dec: &mut Decoder<'_>,
    name: &str,
    (m, starts): (&mut B::Matrix, &[usize]),
    min_columns: usize,
) -> Result<(usize, usize)> {
    let cols = get_columns(be, dec, name, (m, starts[0]), min_columns)?;
    let start = cols.first().map_or(starts[0], |&c| c);
    if !starts.contains(&start) || cols.iter().enumerate().any(|(i, &c)| c != start + i) {
        return Err(Error::unsupported(format!(
            "state buffer {name}: its rows are not at columns {starts:?}.. of caller memory; \
             this configuration cannot step in caller memory"
        )));
    }
    Ok((start, cols.len()))
}
