//! The items and results of a chunk when they are plain numbers: one byte string instead of
//! one serde call per element.
//!
//! Why by hand: postcard writes a sequence element by element, each integer through a
//! byte-at-a-time varint loop, and reads it back the same way; for a chunk of `u64`s that
//! loop was most of a pool's per-item cost (a `pool.map` over 100,000 integers spent more
//! time in the two varint loops than in everything else it does per item). No serde data
//! format can treat a sequence of numbers as a whole, since serde only ever sees one
//! element at a time; so a chunk whose element type is a primitive number travels as one
//! serde byte string that this module fills and reads directly. The numbers themselves keep
//! postcard's encodings (varints, zigzag for signed integers, one byte for `u8`/`i8`,
//! little-endian IEEE floats), so the payload is as small as postcard's; only the loops
//! differ: a varint is written and read eight bytes at a time.
//!
//! Both ends decide the same way: the chunk's element type is the same type in the parent
//! and in the worker (the same `Chunks<C>` encodes and decodes it), and whether it is packed
//! depends on that type alone. Bytes from a worker are checked like any other input: a
//! count larger than the bytes can hold, a truncated or overlong varint, a value out of the
//! type's range or trailing bytes are an error, never a panic or a large allocation.

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// `Some($body)` evaluated with the type name `$p` standing for the primitive number that
/// `$t` is, or `None` if `$t` is none of them.
macro_rules! with_prim {
    ($t:ty, $p:ident => $body:expr) => {
        with_prim!(@each $t, $p, $body, u8, i8, u16, i16, u32, i32, u64, i64, usize, isize, f32, f64)
    };
    (@each $t:ty, $p:ident, $body:expr, $($prim:ty),*) => {{
        let id = TypeId::of::<$t>();
        $(
            if id == TypeId::of::<$prim>() {
                type $p = $prim;
                Some($body)
            } else
        )* {
            None
        }
    }};
}

/// A slice of chunk elements to serialize (packed when `T` is a primitive number).
pub(crate) struct Seq<'a, T>(pub(crate) &'a [T]);

impl<T: Serialize + 'static> Serialize for Seq<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !is_packed::<T>() {
            return serializer.collect_seq(self.0);
        }
        let mut buf = crate::handle::take_scratch();
        // `pack_as` cannot fail (`with_prim!` chose P as the type T is); were it to, the
        // empty byte string would be refused by the decoder, not misread.
        with_prim!(T, P => pack_as::<T, P>(self.0, &mut buf));
        let result = serializer.serialize_bytes(&buf);
        crate::handle::keep_scratch(buf);
        result
    }
}

/// The chunk elements [`Seq`] wrote, read back.
pub(crate) struct SeqBuf<T>(pub(crate) Vec<T>);

impl<'de, T: DeserializeOwned + 'static> Deserialize<'de> for SeqBuf<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if is_packed::<T>() {
            deserializer
                .deserialize_bytes(Unpack(PhantomData))
                .map(SeqBuf)
        } else {
            Vec::<T>::deserialize(deserializer).map(SeqBuf)
        }
    }
}

/// For `#[serde(serialize_with)]` on a `Vec` field of chunk elements.
pub(crate) fn serialize_vec<T, S>(values: &[T], serializer: S) -> Result<S::Ok, S::Error>
where
    T: Serialize + 'static,
    S: Serializer,
{
    Seq(values).serialize(serializer)
}

/// For `#[serde(deserialize_with)]` on a `Vec` field of chunk elements.
pub(crate) fn deserialize_vec<'de, T, D>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    T: DeserializeOwned + 'static,
    D: Deserializer<'de>,
{
    SeqBuf::deserialize(deserializer).map(|s| s.0)
}

/// How a primitive number travels (postcard's encoding of it).
#[derive(Clone, Copy)]
enum Form {
    /// A varint of `to_bits` (zigzagged for signed integers).
    Varint,
    /// The low `n` bytes of `to_bits`, little-endian.
    Fixed(usize),
}

/// A primitive number that chunks pack.
trait Prim: Copy + 'static {
    const FORM: Form;
    fn to_bits(self) -> u64;
    /// `None` if `bits` is out of the type's range.
    fn from_bits(bits: u64) -> Option<Self>;
}

macro_rules! unsigned_varint {
    ($($t:ty),*) => {$(
        impl Prim for $t {
            const FORM: Form = Form::Varint;
            fn to_bits(self) -> u64 {
                self as u64
            }
            fn from_bits(bits: u64) -> Option<Self> {
                <$t>::try_from(bits).ok()
            }
        }
    )*};
}

macro_rules! signed_varint {
    ($($t:ty),*) => {$(
        impl Prim for $t {
            const FORM: Form = Form::Varint;
            fn to_bits(self) -> u64 {
                let v = self as i64;
                ((v << 1) ^ (v >> 63)) as u64
            }
            fn from_bits(bits: u64) -> Option<Self> {
                let v = (bits >> 1) as i64 ^ -((bits & 1) as i64);
                <$t>::try_from(v).ok()
            }
        }
    )*};
}

unsigned_varint!(u16, u32, u64, usize);
signed_varint!(i16, i32, i64, isize);

impl Prim for u8 {
    const FORM: Form = Form::Fixed(1);
    fn to_bits(self) -> u64 {
        self.into()
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(bits as u8)
    }
}

impl Prim for i8 {
    const FORM: Form = Form::Fixed(1);
    fn to_bits(self) -> u64 {
        u64::from(self as u8)
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(bits as u8 as i8)
    }
}

impl Prim for f32 {
    const FORM: Form = Form::Fixed(4);
    fn to_bits(self) -> u64 {
        self.to_bits().into()
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(f32::from_bits(bits as u32))
    }
}

impl Prim for f64 {
    const FORM: Form = Form::Fixed(8);
    fn to_bits(self) -> u64 {
        self.to_bits()
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(f64::from_bits(bits))
    }
}

fn is_packed<T: 'static>() -> bool {
    with_prim!(T, P => std::mem::size_of::<P>()).is_some()
}

/// The longest varint (a `u64`'s).
const VARINT_MAX: usize = 10;

/// The count, then each item in `P`'s form, into `out` (empty). `T` is `P` (the caller
/// checked their type ids); if it were not, `out` is left empty.
fn pack_as<T: 'static, P: Prim>(items: &[T], out: &mut Vec<u8>) {
    let each = match P::FORM {
        Form::Varint => VARINT_MAX,
        Form::Fixed(n) => n,
    };
    // Room for the widest encoding, and eight bytes of slack for the eight-byte stores.
    out.resize(VARINT_MAX + items.len() * each + 8, 0);
    let buf = out.as_mut_slice();
    let mut pos = put_varint(buf, 0, items.len() as u64);
    for item in items {
        // Always `Some` (T is P); optimised to a plain read.
        let Some(&p) = (item as &dyn Any).downcast_ref::<P>() else {
            out.clear();
            return;
        };
        let bits = p.to_bits();
        pos += match P::FORM {
            Form::Varint => put_varint(buf, pos, bits),
            Form::Fixed(n) => {
                buf[pos..pos + 8].copy_from_slice(&bits.to_le_bytes());
                n
            }
        };
    }
    out.truncate(pos);
}

const CONTINUE: u64 = 0x8080_8080_8080_8080;

/// A varint's length by the value's leading zeros (`LENGTH[64]`: the value 0).
const LENGTH: [u8; 65] = {
    let mut table = [0u8; 65];
    let mut zeros = 0;
    while zeros <= 64 {
        let bits = 64 - zeros;
        table[zeros] = if bits == 0 { 1 } else { bits.div_ceil(7) as u8 };
        zeros += 1;
    }
    table
};

/// Write `v` as a postcard varint at `out[pos..]` (which has room for ten bytes plus eight of
/// slack); returns its length.
#[inline(always)]
fn put_varint(out: &mut [u8], pos: usize, v: u64) -> usize {
    if v < 0x80 {
        out[pos] = v as u8;
        return 1;
    }
    let len = usize::from(LENGTH[v.leading_zeros() as usize]);
    // The low 56 bits as eight 7-bit groups, one per byte, each but the last with its
    // continuation bit.
    let word = spread7(v);
    if len <= 8 {
        let more = CONTINUE >> (8 * (9 - len));
        out[pos..pos + 8].copy_from_slice(&(word | more).to_le_bytes());
    } else {
        put_long(out, pos, word, v, len);
    }
    len
}

/// The ninth and tenth bytes of a varint.
#[inline]
fn put_long(out: &mut [u8], pos: usize, word: u64, v: u64, len: usize) {
    out[pos..pos + 8].copy_from_slice(&(word | CONTINUE).to_le_bytes());
    let high = v >> 56;
    if len == 9 {
        out[pos + 8] = high as u8;
    } else {
        out[pos + 8] = (high as u8 & 0x7f) | 0x80;
        out[pos + 9] = (high >> 7) as u8;
    }
}

/// Bits `7i..7i+7` of `v` into byte `i`, for `i` in `0..8`: halves, quarters, eighths.
#[inline(always)]
fn spread7(v: u64) -> u64 {
    let x = v & ((1 << 56) - 1);
    let x = ((x << 4) & 0x0fff_ffff_0000_0000) | (x & 0x0fff_ffff);
    let x = ((x << 2) & 0x3fff_0000_3fff_0000) | (x & 0x0000_3fff_0000_3fff);
    ((x << 1) & 0x7f00_7f00_7f00_7f00) | (x & 0x007f_007f_007f_007f)
}

/// Byte `i`'s low seven bits into bits `7i..7i+7`, for `i` in `0..8` (the inverse of
/// [`spread7`]; continuation bits are dropped).
#[inline(always)]
fn gather7(word: u64) -> u64 {
    let x = word & 0x7f7f_7f7f_7f7f_7f7f;
    let x = ((x & 0x7f00_7f00_7f00_7f00) >> 1) | (x & 0x007f_007f_007f_007f);
    let x = ((x & 0x3fff_0000_3fff_0000) >> 2) | (x & 0x0000_3fff_0000_3fff);
    ((x & 0x0fff_ffff_0000_0000) >> 4) | (x & 0x0fff_ffff)
}

/// Read a postcard varint at `bytes[*pos..]`, advancing `pos`; `None` if it is truncated or
/// longer than a `u64`'s.
#[inline(always)]
fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let at = *pos;
    let Some(eight) = bytes.get(at..at + 8) else {
        return get_short(bytes, pos);
    };
    let word = u64::from_le_bytes(eight.try_into().ok()?);
    let stops = !word & CONTINUE;
    // The length by branches, not by counting zeros: a chunk's lengths repeat, the branches
    // are predicted, and the next varint's position does not wait for this one's bytes (a
    // computed length chains every read to the one before).
    if stops & 0x80 != 0 {
        *pos = at + 1;
        return Some(word & 0x7f);
    }
    if stops == 0 {
        return get_long(bytes, pos, word);
    }
    let mut len = 2;
    while len < 8 && stops & (0x80 << (8 * (len - 1))) == 0 {
        len += 1;
    }
    *pos = at + len;
    Some(gather7(word & (u64::MAX >> (64 - 8 * len))))
}

/// A varint of nine or ten bytes, whose first eight (`word`) carry 56 bits.
#[inline]
fn get_long(bytes: &[u8], pos: &mut usize, word: u64) -> Option<u64> {
    let at = *pos;
    let low = gather7(word);
    let ninth = *bytes.get(at + 8)?;
    if ninth & 0x80 == 0 {
        *pos = at + 9;
        return Some(low | u64::from(ninth) << 56);
    }
    let tenth = *bytes.get(at + 9)?;
    if tenth > 1 {
        return None;
    }
    *pos = at + 10;
    Some(low | u64::from(ninth & 0x7f) << 56 | u64::from(tenth) << 63)
}

/// A varint in the last eight bytes: byte by byte, as postcard reads it.
#[cold]
fn get_short(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let at = *pos;
    let mut v = 0u64;
    for i in 0..VARINT_MAX {
        let byte = *bytes.get(at + i)?;
        if i == VARINT_MAX - 1 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos = at + i + 1;
            return Some(v);
        }
    }
    None
}

struct Unpack<T>(PhantomData<fn() -> T>);

impl<T: 'static> Visitor<'_> for Unpack<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a packed sequence of {}", std::any::type_name::<T>())
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<T>, E> {
        with_prim!(T, P => unpack_as::<T, P>(bytes))
            .flatten()
            .ok_or_else(|| {
                E::custom(format_args!(
                    "a corrupt packed sequence of {}",
                    std::any::type_name::<T>()
                ))
            })
    }
}

/// The items [`pack_as`] wrote; `None` if `bytes` are not exactly that. `T` is `P`.
fn unpack_as<T: 'static, P: Prim>(bytes: &[u8]) -> Option<Vec<T>> {
    let mut pos = 0;
    let count = usize::try_from(get_varint(bytes, &mut pos)?).ok()?;
    let each = match P::FORM {
        Form::Varint => 1,
        Form::Fixed(n) => n,
    };
    // Every item takes at least `each` bytes: the count cannot make us allocate more than
    // the bytes justify.
    if count > (bytes.len() - pos) / each {
        return None;
    }
    let mut items: Vec<P> = Vec::with_capacity(count);
    match P::FORM {
        Form::Varint => {
            for _ in 0..count {
                items.push(P::from_bits(get_varint(bytes, &mut pos)?)?);
            }
        }
        Form::Fixed(n) => {
            let body = bytes.get(pos..pos + count * n)?;
            for b in body.chunks_exact(n) {
                let mut le = [0u8; 8];
                le[..n].copy_from_slice(b);
                items.push(P::from_bits(u64::from_le_bytes(le))?);
            }
            pos += count * n;
        }
    }
    if pos != bytes.len() {
        return None;
    }
    // Always succeeds: T is P.
    (Box::new(items) as Box<dyn Any>)
        .downcast::<Vec<T>>()
        .ok()
        .map(|b| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(items: &[T])
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug + 'static,
    {
        let bytes = postcard::to_allocvec(&Seq(items)).unwrap();
        let back: SeqBuf<T> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.0, items);
    }

    /// Every length of varint, both ways, and the same bytes as postcard's.
    #[test]
    fn varints_match_postcards() {
        let mut values = vec![0u64, 1, 127, 128, u64::MAX, u64::MAX - 1, 1 << 63];
        for shift in 0..64 {
            let v = 1u64 << shift;
            values.extend([v - 1, v, v + 1, v | (v >> 1)]);
        }
        for &v in &values {
            let mut out = [0u8; 18];
            let len = put_varint(&mut out, 0, v);
            assert_eq!(&out[..len], postcard::to_allocvec(&v).unwrap(), "{v:#x}");
            for pad in [0, 8] {
                let mut bytes = out[..len].to_vec();
                bytes.resize(len + pad, 0);
                let mut pos = 0;
                assert_eq!(get_varint(&bytes, &mut pos), Some(v), "{v:#x}, {pad} after");
                assert_eq!(pos, len);
            }
        }
        round_trip(&values);
        round_trip(&values.iter().map(|&v| v as i64).collect::<Vec<_>>());
    }

    #[test]
    fn every_primitive_round_trips() {
        round_trip::<u8>(&[0, 1, 255]);
        round_trip::<i8>(&[i8::MIN, -1, 0, i8::MAX]);
        round_trip::<u16>(&[0, 300, u16::MAX]);
        round_trip::<i16>(&[i16::MIN, -300, 0, i16::MAX]);
        round_trip::<u32>(&[0, 70_000, u32::MAX]);
        round_trip::<i32>(&[i32::MIN, -70_000, 0, i32::MAX]);
        round_trip::<usize>(&[0, usize::MAX]);
        round_trip::<isize>(&[isize::MIN, 0, isize::MAX]);
        round_trip::<f32>(&[0.0, -1.5, f32::MAX, f32::INFINITY]);
        round_trip::<f64>(&[0.0, -1.5, f64::MIN_POSITIVE, f64::NEG_INFINITY]);
        round_trip::<u64>(&[]);
        // Not packed: the plain sequence.
        round_trip::<String>(&["a".into(), "bc".into()]);
        round_trip::<(u8, u8)>(&[(1, 2)]);
        assert!(!is_packed::<bool>() && !is_packed::<u128>() && is_packed::<u64>());
    }

    /// Whatever the bytes, decoding returns an error or a value: never a panic, never an
    /// allocation the bytes do not justify.
    #[test]
    fn bad_bytes_are_errors() {
        let decode = |bytes: &[u8]| {
            let framed = postcard::to_allocvec(&serde_bytes_of(bytes)).unwrap();
            postcard::from_bytes::<SeqBuf<u32>>(&framed).map(|s| s.0)
        };
        assert_eq!(decode(&[2, 1, 2]).unwrap(), [1, 2]);
        assert!(decode(&[]).is_err(), "no count");
        assert!(decode(&[3, 1, 2]).is_err(), "fewer items than counted");
        assert!(decode(&[1, 1, 2]).is_err(), "trailing bytes");
        assert!(
            decode(&[1, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err(),
            "beyond u32"
        );
        assert!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1]).is_err(),
            "huge count"
        );
        let overlong = [
            1u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(decode(&overlong).is_err(), "a varint past 64 bits");
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode(&bytes);
            let framed = postcard::to_allocvec(&serde_bytes_of(&bytes)).unwrap();
            let _ = postcard::from_bytes::<SeqBuf<f64>>(&framed);
            let _ = postcard::from_bytes::<SeqBuf<i8>>(&framed);
        }
        // Well-formed sequences with one byte changed or cut short: an error or a sequence no
        // longer than the count said, never a panic.
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let n = (next() % 40) as usize;
            let values: Vec<u64> = (0..n).map(|_| next() >> (next() % 64)).collect();
            let mut framed = postcard::to_allocvec(&Seq(&values)).unwrap();
            let at = (next() as usize) % framed.len();
            if next() % 2 == 0 {
                framed[at] = next() as u8;
            } else {
                framed.truncate(at);
            }
            if let Ok(back) = postcard::from_bytes::<SeqBuf<u64>>(&framed) {
                assert!(back.0.len() <= framed.len());
            }
            let _ = postcard::from_bytes::<SeqBuf<i16>>(&framed);
            let _ = postcard::from_bytes::<SeqBuf<f32>>(&framed);
        }
    }

    /// `bytes` as a serde byte string (not a sequence of `u8`s).
    fn serde_bytes_of(bytes: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(bytes)
    }
}
