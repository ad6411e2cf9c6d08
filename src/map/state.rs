//! Partial state that can leave memory: every group key and accumulator of a native
//! job implements [`State`], so the engine can size a task's groups against
//! `--memory-limit` and spill them to disk (the shuffle's partition files) when they
//! outgrow it, for every job alike (DataFusion's accumulators have the same verb,
//! `state`, for the same reason).
//!
//! The encoding is private to one run (spill files never outlive it): little-endian
//! fixed-width integers, and text as a u32 length then its UTF-8 bytes.

use crate::error::{Error, Result};

/// A key or accumulator that can be encoded to bytes, decoded back, and sized.
pub trait State: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes one value from the front of `input`, advancing it past the value.
    /// Errors: the bytes end early or are not a value of this type (a damaged spill file).
    fn decode(input: &mut &[u8]) -> Result<Self>;

    /// Bytes the value owns on the heap (a `String`'s capacity); 0 for plain values.
    /// The inline size is accounted by the table that holds the value.
    fn heap_bytes(&self) -> usize {
        0
    }
}

fn damaged() -> Error {
    Error::sink("spill", "damaged record in a spill file")
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(damaged());
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

macro_rules! fixed_width {
    ($($t:ty),*) => {$(
        impl State for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }

            fn decode(input: &mut &[u8]) -> Result<Self> {
                let bytes = take(input, size_of::<$t>())?;
                // `take` returned exactly size_of::<$t>() bytes.
                Ok(<$t>::from_le_bytes(bytes.try_into().map_err(|_| damaged())?))
            }
        }
    )*};
}

fixed_width!(u32, u64, i64, i128);

impl State for String {
    fn encode(&self, out: &mut Vec<u8>) {
        // Keys come from single input lines, bounded far below 4 GiB by the reader.
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(input: &mut &[u8]) -> Result<Self> {
        let len = u32::decode(input)? as usize;
        let bytes = take(input, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| damaged())
    }

    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl<A: State, B: State> State for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self> {
        Ok((A::decode(input)?, B::decode(input)?))
    }

    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes() + self.1.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: State + PartialEq + std::fmt::Debug>(value: T) {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        bytes.extend_from_slice(b"next");
        let mut input = bytes.as_slice();
        assert_eq!(T::decode(&mut input).unwrap(), value);
        assert_eq!(input, b"next", "decode must consume exactly its own bytes");
    }

    #[test]
    fn values_round_trip() {
        round_trip(0u64);
        round_trip(u64::MAX);
        round_trip(i64::MIN);
        round_trip(-170_141_183_460_469_231_731_687_303_715_884_105_728i128);
        round_trip(String::new());
        round_trip("2026-11\t/é?q=1".to_string());
        round_trip(("k".to_string(), (7i128, -7i128)));
    }

    #[test]
    fn truncated_or_invalid_bytes_are_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        "hello".to_string().encode(&mut bytes);
        for cut in 0..bytes.len() {
            assert!(String::decode(&mut &bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(u64::decode(&mut &[1u8, 2, 3][..]).is_err());
        let invalid = [1u8, 0, 0, 0, 0xff];
        assert!(String::decode(&mut &invalid[..]).is_err());
    }
}
