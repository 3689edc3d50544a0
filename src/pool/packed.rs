//! A chunk's items and results on the wire: a chunk of a primitive number type travels as one
//! byte string of little-endian values; any other type as postcard's sequence.
//!
//! Why: postcard writes a sequence element by element (a varint and a bounds check each), and
//! for a map of small tasks that per-item encoding in the parent, done serially for every
//! worker, is most of the pool's cost. A byte string is one copy out and one pass back. Both
//! ends name the same element type (the chunk trampoline is generic over it, see `task.rs`),
//! so they always agree on the form. The choice is made by `TypeId`, without `unsafe`: values
//! are moved in and out through `dyn Any` (for a known type, the checks fold away).

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The packed element types: each with its little-endian width. `usize`/`isize` travel as
/// 64 bits, whatever the target (a pool over MPI may mix machines).
macro_rules! packed_types {
    ($m:ident) => {
        $m!(u8, u8, 1);
        $m!(i8, i8, 1);
        $m!(u16, u16, 2);
        $m!(i16, i16, 2);
        $m!(u32, u32, 4);
        $m!(i32, i32, 4);
        $m!(u64, u64, 8);
        $m!(i64, i64, 8);
        $m!(u128, u128, 16);
        $m!(i128, i128, 16);
        $m!(f32, f32, 4);
        $m!(f64, f64, 8);
        $m!(usize, u64, 8);
        $m!(isize, i64, 8);
    };
}

/// Whether `T` travels packed.
fn is_packed<T: 'static>() -> bool {
    let t = TypeId::of::<T>();
    macro_rules! check {
        ($t:ty, $wire:ty, $n:literal) => {
            if t == TypeId::of::<$t>() {
                return true;
            }
        };
    }
    packed_types!(check);
    false
}

/// `items` as little-endian bytes, if `T` is packed.
fn pack<T: 'static>(items: &[T]) -> Option<Vec<u8>> {
    macro_rules! pack {
        ($t:ty, $wire:ty, $n:literal) => {
            if TypeId::of::<T>() == TypeId::of::<$t>() {
                let mut bytes = Vec::with_capacity(items.len() * $n);
                for item in items {
                    let value = (item as &dyn Any).downcast_ref::<$t>()?;
                    // `usize`/`isize` widen losslessly to their 64-bit wire type.
                    bytes.extend_from_slice(&(*value as $wire).to_le_bytes());
                }
                return Some(bytes);
            }
        };
    }
    packed_types!(pack);
    None
}

/// The values in `bytes`, if `T` is packed and `bytes` holds a whole number of them that
/// fit `T` (`Err`: why not).
fn unpack<T: 'static>(bytes: &[u8]) -> Result<Vec<T>, String> {
    macro_rules! unpack {
        ($t:ty, $wire:ty, $n:literal) => {
            if TypeId::of::<T>() == TypeId::of::<$t>() {
                if !bytes.len().is_multiple_of($n) {
                    return Err(format!(
                        "{} bytes are not a whole number of {}-byte values",
                        bytes.len(),
                        $n
                    ));
                }
                let mut values: Vec<$t> = Vec::with_capacity(bytes.len() / $n);
                for word in bytes.chunks_exact($n) {
                    let mut le = [0u8; $n];
                    le.copy_from_slice(word);
                    let wide = <$wire>::from_le_bytes(le);
                    values.push(
                        <$t>::try_from(wide)
                            .map_err(|_| format!("{wide} does not fit a {}", stringify!($t)))?,
                    );
                }
                let values: Box<dyn Any> = Box::new(values);
                return values
                    .downcast::<Vec<T>>()
                    .map(|v| *v)
                    .map_err(|_| "packed type mismatch".to_string());
            }
        };
    }
    packed_types!(unpack);
    Err(format!(
        "{} is not a packed type",
        std::any::type_name::<T>()
    ))
}

/// A chunk's items (or results) to encode: see the module docs.
pub(crate) struct PackedSlice<'a, T>(pub &'a [T]);

impl<T: Serialize + 'static> Serialize for PackedSlice<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match pack(self.0) {
            Some(bytes) => serializer.serialize_bytes(&bytes),
            None => self.0.serialize(serializer),
        }
    }
}

/// A chunk's items (or results), decoded: see the module docs.
pub(crate) struct PackedVec<T>(pub Vec<T>);

impl<'de, T: DeserializeOwned + 'static> Deserialize<'de> for PackedVec<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if is_packed::<T>() {
            deserializer.deserialize_bytes(Bytes(PhantomData))
        } else {
            Vec::<T>::deserialize(deserializer).map(PackedVec)
        }
    }
}

/// [`PackedSlice`] for `#[serde(serialize_with)]`.
pub(crate) fn serialize<T, S>(items: &[T], serializer: S) -> Result<S::Ok, S::Error>
where
    T: Serialize + 'static,
    S: Serializer,
{
    PackedSlice(items).serialize(serializer)
}

/// [`PackedVec`] for `#[serde(deserialize_with)]`.
pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    T: DeserializeOwned + 'static,
    D: Deserializer<'de>,
{
    PackedVec::deserialize(deserializer).map(|p| p.0)
}

/// Reads a packed byte string (borrowed or not).
struct Bytes<T>(PhantomData<fn() -> T>);

impl<'de, T: DeserializeOwned + 'static> Visitor<'de> for Bytes<T> {
    type Value = PackedVec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "packed {} values", std::any::type_name::<T>())
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        unpack(bytes).map(PackedVec).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

#[cfg(test)]
mod tests {
    use super::{PackedSlice, PackedVec};

    fn round_trip<T>(items: &[T]) -> Vec<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        let bytes = postcard::to_allocvec(&PackedSlice(items)).expect("encode");
        postcard::from_bytes::<PackedVec<T>>(&bytes)
            .expect("decode")
            .0
    }

    #[test]
    fn every_packed_type_and_a_sequence_type_round_trip() {
        assert_eq!(round_trip(&[0u8, 1, 255]), [0, 1, 255]);
        assert_eq!(round_trip(&[i8::MIN, -1, i8::MAX]), [i8::MIN, -1, i8::MAX]);
        assert_eq!(round_trip(&[u16::MAX, 7]), [u16::MAX, 7]);
        assert_eq!(round_trip(&[i16::MIN, 7]), [i16::MIN, 7]);
        assert_eq!(round_trip(&[u32::MAX, 7]), [u32::MAX, 7]);
        assert_eq!(round_trip(&[i32::MIN, 7]), [i32::MIN, 7]);
        assert_eq!(round_trip(&[u64::MAX, 0, 1 << 40]), [u64::MAX, 0, 1 << 40]);
        assert_eq!(round_trip(&[i64::MIN, -1]), [i64::MIN, -1]);
        assert_eq!(round_trip(&[u128::MAX, 3]), [u128::MAX, 3]);
        assert_eq!(round_trip(&[i128::MIN, 3]), [i128::MIN, 3]);
        assert_eq!(round_trip(&[1.5f32, -0.0]), [1.5, -0.0]);
        let nan = round_trip(&[f64::NAN, f64::INFINITY]);
        assert!(nan[0].is_nan() && nan[1] == f64::INFINITY);
        assert_eq!(round_trip(&[usize::MAX, 0]), [usize::MAX, 0]);
        assert_eq!(round_trip(&[isize::MIN, 0]), [isize::MIN, 0]);
        assert_eq!(round_trip::<u64>(&[]), Vec::<u64>::new());
        assert_eq!(round_trip(&["a".to_string()]), ["a"]);
        assert_eq!(round_trip(&[(), ()]), [(), ()]);
    }

    #[test]
    fn packed_numbers_are_one_byte_string() {
        let bytes = postcard::to_allocvec(&PackedSlice(&[1u32, 2])).expect("encode");
        assert_eq!(bytes, [8, 1, 0, 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn bad_packed_bytes_are_an_error_not_a_panic() {
        // Seven bytes: not a whole number of u64s.
        let ragged = postcard::to_allocvec(&serde_bytes::Bytes::new(&[0; 7])).expect("encode");
        assert!(postcard::from_bytes::<PackedVec<u64>>(&ragged).is_err());
        // A 64-bit value that does not fit this target's usize is refused, not truncated.
        if usize::BITS < 64 {
            let wide = postcard::to_allocvec(&serde_bytes::Bytes::new(&[0xff; 8])).expect("x");
            assert!(postcard::from_bytes::<PackedVec<usize>>(&wide).is_err());
        }
    }
}
