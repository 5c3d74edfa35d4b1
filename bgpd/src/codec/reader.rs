//! A checked cursor over a byte slice for the decoder: every read returns `None` instead of
//! panicking when the input is short. No I/O.

/// Reads big-endian integers and sub-slices off the front of a slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// What has not been read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// The next `n` bytes, or `None` (and nothing consumed) when fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.bytes.split_at_checked(n)?;
        self.bytes = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = tail;
        Some(*head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (first, tail) = self.bytes.split_first()?;
        self.bytes = tail;
        Some(*first)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

/// Overwrites `bytes.len()` bytes of `out` at `at` (a length field written earlier as a
/// placeholder); does nothing if the range is outside `out`, which the encoder never asks for.
pub(crate) fn patch(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(slot) = at
        .checked_add(bytes.len())
        .and_then(|end| out.get_mut(at..end))
    {
        slot.copy_from_slice(bytes);
    }
}
