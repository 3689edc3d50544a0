//! Python's pickle format for plain data, so a Rust process and a Python program can exchange
//! typed values over a [`Connection`](crate::Connection) ([`Connection::send_pickle`] and
//! [`Connection::recv_pickle`], the counterparts of Python's `conn.send(obj)` and
//! `conn.recv()`).
//!
//! The encoding and decoding are `serde-pickle`'s: `None`, `bool`, `int` (any size, as far as
//! the Rust type allows), `float`, `str`, `bytes`, `list`, `tuple`, `dict`, `set` map to the
//! obvious serde types (`Option`, integers, `f64`, `String`, `serde_bytes::ByteBuf`, `Vec`,
//! tuples, maps and structs). [`PyValue`] holds any of them when the shape is not known (a
//! `dict` with values of mixed types, a tuple of mixed types), and [`PyKey`] any `dict` key;
//! both keep tuples apart from lists, both ways.
//!
//! Named `PyValue` rather than `Value` so it does not read as [`multiproc::Value`](crate::Value),
//! the shared-memory value; `pickle::Value` remains as a deprecated alias.
//!
//! Safety: a pickle is a program for a small stack machine, and some of its instructions
//! import a module or call an object (`GLOBAL`, `REDUCE`, `BUILD`, `NEWOBJ`, ...). Nothing here
//! executes anything, and more: before decoding, every instruction of an incoming pickle is
//! checked, and one that would import or call anything rejects the whole message, so a
//! pickle of an arbitrary class instance is an error, never a half-understood value. The one
//! exception is how protocols 0-3 spell a set or a frozenset, protocol 3 a bytearray, and this
//! module's own encoder a set: a `GLOBAL` of exactly `builtins`/`__builtin__`
//! `set`, `frozenset` or `bytearray` applied by `REDUCE`, which `serde-pickle` turns into the
//! value itself without calling anything.
//!
//! [`Connection::send_pickle`]: crate::Connection::send_pickle
//! [`Connection::recv_pickle`]: crate::Connection::recv_pickle
//!
//! ```
//! use std::collections::BTreeMap;
//! use multiproc::pickle::{self, PyKey, PyValue};
//! let mut order = BTreeMap::new();
//! order.insert("item".to_string(), ("tea".to_string(), 2));
//! let bytes = pickle::to_vec(&order)?;
//! // Decoded without knowing its shape:
//! let PyValue::Dict(dict) = pickle::from_slice::<PyValue>(&bytes)? else { unreachable!() };
//! assert_eq!(dict[&PyKey::from("item")], PyValue::Tuple(vec!["tea".into(), 2.into()]));
//! # Ok::<(), multiproc::CodecError>(())
//! ```

mod de;
mod value;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::handle::CodecError;

pub use num_bigint::BigInt;
pub use value::{PyKey, PyValue};

/// The former name of [`PyValue`].
///
/// ```
/// use multiproc::pickle::{self, PyValue};
/// #[allow(deprecated)]
/// let old: pickle::Value = PyValue::from("same type"); // `Value` is `PyValue`
/// let bytes = pickle::to_vec(&old)?;
/// assert_eq!(pickle::from_slice::<PyValue>(&bytes)?, old);
/// # Ok::<(), multiproc::CodecError>(())
/// ```
#[deprecated(
    since = "0.2.0",
    note = "renamed `PyValue` (beside `PyKey`), so it does not read as `multiproc::Value`; its \
            variants now have Python's names (`Int`, `Float`, `Str`, `BigInt`) and keys are `PyKey`"
)]
pub type Value = PyValue;

/// Encode `value` as a pickle (protocol 3, which every Python 3 reads).
///
/// ```
/// let bytes = multiproc::pickle::to_vec(&(1, "two", [3.0]))?;
/// assert_eq!(bytes[..2], [0x80, 3]); // PROTO 3
/// # Ok::<(), multiproc::CodecError>(())
/// ```
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    serde_pickle::to_vec(value, serde_pickle::SerOptions::new()).map_err(|e| CodecError::Encode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Encode a [`PyValue`] exactly as a pickle: unlike [`to_vec`] (serde's data model), it
/// writes sets as sets and integers of any size.
///
/// ```
/// use std::collections::BTreeSet;
/// use multiproc::pickle::{self, PyKey, PyValue};
/// let set = PyValue::Set(BTreeSet::from([PyKey::from(1), PyKey::from("a")]));
/// let bytes = pickle::value_to_vec(&set)?;
/// assert_eq!(pickle::value_from_slice(&bytes)?, set);
/// # Ok::<(), multiproc::CodecError>(())
/// ```
pub fn value_to_vec(value: &PyValue) -> Result<Vec<u8>, CodecError> {
    serde_pickle::value_to_vec(
        &value::to_pickle_value(value),
        serde_pickle::SerOptions::new(),
    )
    .map_err(|e| CodecError::Encode {
        type_name: "multiproc::pickle::PyValue",
        reason: e.to_string(),
    })
}

/// Decode a pickle of plain data; a pickle with any instruction that imports or calls
/// something is rejected before decoding. A [`PyValue`] anywhere in `T` gets the exact value
/// (a tuple as a tuple, a set as a set).
///
/// ```
/// // pickle.dumps(("a", 1), protocol=2)
/// let bytes = b"\x80\x02X\x01\x00\x00\x00aq\x00K\x01\x86q\x01.";
/// assert_eq!(multiproc::pickle::from_slice::<(String, u8)>(bytes)?, ("a".to_string(), 1));
/// // pickle.dumps(os.system) -- an import: refused.
/// assert!(multiproc::pickle::from_slice::<multiproc::pickle::PyValue>(b"cposix\nsystem\nq\x00.").is_err());
/// # Ok::<(), multiproc::CodecError>(())
/// ```
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let type_name = std::any::type_name::<T>();
    let error = |reason: String| CodecError::Decode { type_name, reason };
    let plain = check_plain(bytes).map_err(error)?;
    if plain.unorderable_set {
        // The exact value cannot be built (see value_from_slice); serde-pickle's reader reads
        // a set as a sequence without ordering it.
        return serde_pickle::from_slice(bytes, serde_pickle::DeOptions::new())
            .map_err(|e| error(e.to_string()));
    }
    let value = serde_pickle::value_from_slice(bytes, serde_pickle::DeOptions::new())
        .map_err(|e| error(e.to_string()))?;
    T::deserialize(de::ValueDeserializer(PyValue::from(value))).map_err(|e| error(e.to_string()))
}

/// Decode a pickle of plain data into a [`PyValue`], keeping what serde's data model cannot
/// carry (integers beyond 128 bits, sets); checked like [`from_slice`].
///
/// ```
/// // pickle.dumps(2**70)
/// let bytes = b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00@.";
/// let value = multiproc::pickle::value_from_slice(bytes)?;
/// assert_eq!(value.to_string(), "1180591620717411303424");
/// # Ok::<(), multiproc::CodecError>(())
/// ```
pub fn value_from_slice(bytes: &[u8]) -> Result<PyValue, CodecError> {
    let type_name = "multiproc::pickle::PyValue";
    let plain = check_plain(bytes).map_err(|reason| CodecError::Decode { type_name, reason })?;
    if plain.unorderable_set {
        // serde-pickle sorts set elements with an order that is not total for NaN and for
        // floats mixed with integers beyond 2**53; Rust's sort panics on such an order.
        return Err(CodecError::Decode {
            type_name,
            reason: "a set in this pickle may hold NaN, or floats together with integers \
                     beyond 2**53, which cannot be ordered into a PyValue::Set (decode it into \
                     a typed value with from_slice instead)"
                .into(),
        });
    }
    serde_pickle::value_from_slice(bytes, serde_pickle::DeOptions::new())
        .map(PyValue::from)
        .map_err(|e| CodecError::Decode {
            type_name,
            reason: e.to_string(),
        })
}

/// What [`check_plain`] learnt about a pickle beyond its being plain data.
struct Plain {
    /// It builds a set and has a NaN float, or floats and an integer that may exceed 2**53:
    /// elements serde-pickle cannot order consistently (see `value_from_slice`).
    unorderable_set: bool,
}

/// How an instruction's argument is laid out.
enum Arg {
    None,
    Fixed(usize),
    /// A length of this many bytes (little-endian), then that many bytes.
    Counted(usize),
    /// Text up to a newline.
    Line,
}

/// Walk the instructions of `bytes` up to `STOP`: refuse any that imports or calls (except
/// the plain-data constructors of [`plain_global`]), and any unknown one.
///
/// Why by hand: `serde-pickle` tolerates such instructions (it decodes an arbitrary object
/// as an empty dict), and the contract here is to refuse them.
fn check_plain(bytes: &[u8]) -> Result<Plain, String> {
    let mut pos = 0usize;
    let (mut sets, mut floats, mut nan, mut big_int) = (false, false, false, false);
    loop {
        let Some(&op) = bytes.get(pos) else {
            return Err("pickle ends without STOP".into());
        };
        pos += 1;
        let arg = match op {
            b'.' => {
                return Ok(Plain {
                    unorderable_set: sets && (nan || (floats && big_int)),
                });
            }
            // No argument: stack, container and constant instructions.
            b'(' | b'0' | b'1' | b'N' | b'a' | b'd' | b'}' | b'e' | b'l' | b']' | b's' | b't'
            | b')' | b'u' | 0x85 | 0x86 | 0x87 | 0x88 | 0x89 | 0x8f | 0x90 | 0x91 | 0x94 => {
                Arg::None
            }
            b'J' | b'r' | b'j' => Arg::Fixed(4),
            b'K' | b'q' | b'h' | 0x80 => Arg::Fixed(1),
            b'M' => Arg::Fixed(2),
            b'G' | 0x95 => Arg::Fixed(8),
            b'F' | b'I' | b'L' | b'S' | b'V' | b'p' | b'g' => Arg::Line,
            b'T' | b'X' | b'B' | 0x8b => Arg::Counted(4),
            b'U' | b'C' | 0x8c | 0x8a => Arg::Counted(1),
            0x8d | 0x8e | 0x96 => Arg::Counted(8),
            // GLOBAL of a plain-data constructor (how protocols 0-3 write a set or frozenset,
            // and serde-pickle's encoder too, and protocol 3 a bytearray); serde-pickle builds these
            // itself on REDUCE. Any other GLOBAL is refused, so REDUCE can apply to
            // nothing else (it fails on anything that is not one of these).
            b'c' => {
                let global = plain_global(&bytes[pos..]).ok_or_else(|| {
                    format!(
                        "pickle instruction GLOBAL at byte {} would import something; only \
                         plain data (None, bool, int, float, str, bytes, list, tuple, dict, \
                         set) is accepted",
                        pos - 1
                    )
                })?;
                Arg::Fixed(global)
            }
            b'R' => Arg::None,
            // DUP: serde-pickle copies the value, so a few hundred bytes of DUP and TUPLE2
            // build a value of gigabytes. Python's pickler never writes it.
            b'2' => {
                return Err(format!(
                    "pickle instruction DUP at byte {} is not accepted (Python never writes it)",
                    pos - 1
                ));
            }
            0x93 | b'i' | b'o' | b'b' | 0x81 | 0x92 | b'P' | b'Q' | 0x82 | 0x83 | 0x84 | 0x97
            | 0x98 => {
                return Err(format!(
                    "pickle instruction {op:#04x} at byte {} would import or call something; \
                     only plain data (None, bool, int, float, str, bytes, list, tuple, dict, \
                     set) is accepted",
                    pos - 1
                ));
            }
            other => return Err(format!("unknown pickle instruction {other:#04x}")),
        };
        let skip = match arg {
            Arg::None => 0,
            Arg::Fixed(n) => n,
            Arg::Counted(width) => {
                let field = bytes
                    .get(pos..pos + width)
                    .ok_or("pickle truncated in a length")?;
                let mut le = [0u8; 8];
                le[..width].copy_from_slice(field);
                let len = usize::try_from(u64::from_le_bytes(le))
                    .map_err(|_| "pickle length too large".to_string())?;
                width.checked_add(len).ok_or("pickle length too large")?
            }
            Arg::Line => {
                bytes[pos..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .ok_or("pickle truncated in a text argument")?
                    + 1
            }
        };
        let start = pos;
        pos = pos
            .checked_add(skip)
            .filter(|&end| end <= bytes.len())
            .ok_or("pickle truncated in an argument")?;
        let argument = &bytes[start..pos];
        match op {
            // EMPTY_SET, ADDITEMS, FROZENSET; GLOBAL set or frozenset.
            0x8f..=0x91 => sets = true,
            b'c' if argument.ends_with(b"set\n") => sets = true,
            b'G' => {
                floats = true;
                let bits: [u8; 8] = argument.try_into().unwrap_or([0; 8]);
                nan |= f64::from_be_bytes(bits).is_nan();
            }
            b'F' => {
                floats = true;
                nan |= argument
                    .to_ascii_lowercase()
                    .windows(3)
                    .any(|w| w == b"nan");
            }
            // LONG1/LONG4 of more than 6 bytes, INT/LONG text of more than 15 digits.
            0x8a => big_int |= argument.len() > 1 + 6,
            0x8b => big_int |= argument.len() > 4 + 6,
            b'I' | b'L' => big_int |= argument.len() > 17,
            _ => {}
        }
    }
}

/// If `arg` (a GLOBAL instruction's argument, `module\nname\n`) names one of the plain-data
/// constructors serde-pickle builds itself, the argument's length.
fn plain_global(arg: &[u8]) -> Option<usize> {
    const PLAIN: [&[u8]; 6] = [
        b"builtins\nset\n",
        b"__builtin__\nset\n",
        b"builtins\nfrozenset\n",
        b"__builtin__\nfrozenset\n",
        b"builtins\nbytearray\n",
        b"__builtin__\nbytearray\n",
    ];
    PLAIN
        .iter()
        .find(|name| arg.starts_with(name))
        .map(|name| name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_round_trip_and_objects_are_refused() {
        let bytes = to_vec(&vec![(1i64, "x".to_string())]).unwrap();
        assert_eq!(
            from_slice::<Vec<(i64, String)>>(&bytes).unwrap(),
            vec![(1, "x".to_string())]
        );
        // REDUCE on a GLOBAL: builtins.eval("1").
        let evil = b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x011\x94\x85\x94R\x94.";
        assert!(from_slice::<PyValue>(evil).is_err());
        assert!(from_slice::<PyValue>(b"").is_err());
        assert!(from_slice::<PyValue>(b"\x80\x03X\xff\xff\xff\xff").is_err());
    }
}
