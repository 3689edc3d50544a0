//! [`PyValue`] and [`PyKey`]: any plain Python value, and the ones that can be a `dict` key or
//! a `set` element, for messages whose shape is not known in advance (a `dict` mixing value
//! types, tuples of mixed types).
//!
//! Why our own types rather than `serde-pickle`'s `Value`/`HashableValue`: those have no
//! `Serialize` (and, being foreign, cannot be given one), so a decoded value could not be sent
//! back, and their `Deserialize` reads a tuple as a list. These convert to and from them
//! losslessly, so `serde-pickle` still does the encoding and decoding.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use num_bigint::BigInt;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};

/// Any plain Python value: what `pickle` can carry without importing or calling anything.
///
/// Decoded by [`pickle::value_from_slice`](super::value_from_slice), and by
/// [`pickle::from_slice`](super::from_slice) and
/// [`Connection::recv_pickle`](crate::Connection::recv_pickle) wherever a `PyValue` appears
/// in the requested type; in both, a Python `tuple` is a [`PyValue::Tuple`], a `set` a
/// [`PyValue::Set`]. It implements `Serialize`, so it can be sent back with
/// [`Connection::send_pickle`](crate::Connection::send_pickle): tuples stay tuples, dicts keep
/// their mixed keys. Two things serde's data model cannot express are written exactly only by
/// [`pickle::value_to_vec`](super::value_to_vec): a set (which `Serialize` writes as a list)
/// and an integer beyond 64 bits (which `Serialize` refuses).
///
/// ```
/// use multiproc::pickle::{PyKey, PyValue};
/// let (mut a, mut b) = multiproc::pipe()?;
/// // {"name": "tea", 3: (1.5, None)} -- keys and values of mixed types.
/// let order = PyValue::dict([
///     (PyKey::from("name"), PyValue::from("tea")),
///     (PyKey::from(3), PyValue::Tuple(vec![PyValue::from(1.5), PyValue::None])),
/// ]);
/// a.send_pickle(&order)?;
/// let back: PyValue = b.recv_pickle()?;
/// assert_eq!(back, order);
/// assert_eq!(back.to_string(), r#"{3: (1.5, None), "name": "tea"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// An `int` beyond 64 bits.
    BigInt(BigInt),
    /// `float`.
    Float(f64),
    /// `bytes` (and `bytearray`).
    Bytes(Vec<u8>),
    /// `str`.
    Str(String),
    /// `list`.
    List(Vec<PyValue>),
    /// `tuple`.
    Tuple(Vec<PyValue>),
    /// `set`.
    Set(BTreeSet<PyKey>),
    /// `frozenset`.
    FrozenSet(BTreeSet<PyKey>),
    /// `dict`.
    Dict(BTreeMap<PyKey, PyValue>),
}

/// A plain Python value that can be a `dict` key or a `set` element (Python's *hashable*
/// values): the scalars, tuples of keys and frozensets.
///
/// Keys are ordered (by kind, then value; floats by [`f64::total_cmp`]) so they can live in a
/// `BTreeMap`. Unlike Python, `1`, `1.0` and `True` are three different keys.
///
/// ```
/// use multiproc::pickle::{PyKey, PyValue};
/// let key = PyKey::Tuple(vec![PyKey::from("x"), PyKey::from(1)]);
/// let dict = PyValue::dict([(key.clone(), PyValue::from(true))]);
/// let bytes = multiproc::pickle::to_vec(&dict)?;
/// let PyValue::Dict(back) = multiproc::pickle::from_slice::<PyValue>(&bytes)? else { panic!() };
/// assert_eq!(back[&key], PyValue::Bool(true));
/// # Ok::<(), multiproc::CodecError>(())
/// ```
#[derive(Clone, Debug)]
pub enum PyKey {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// An `int` beyond 64 bits.
    BigInt(BigInt),
    /// `float`.
    Float(f64),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `str`.
    Str(String),
    /// `tuple` (of hashable values).
    Tuple(Vec<PyKey>),
    /// `frozenset`.
    FrozenSet(BTreeSet<PyKey>),
}

/// A `match` on `$value`, with an arm for each scalar variant, which [`PyValue`], [`PyKey`] and
/// serde-pickle's `Value` and `HashableValue` all have (`None` to `Str`), then the caller's
/// `$rest` for the others:
/// - `into`: a scalar of one of our kinds (`$from`) moved into the same variant of the other;
/// - `from_pickle`: a scalar of serde-pickle's (`$from`) moved into ours (an `Int` that fits
///   in 64 bits becomes `Int`);
/// - `to_pickle`: a scalar of ours, by reference, copied into serde-pickle's (`$to`);
/// - `serialize`: a scalar of ours, by reference, serialized with `$s`.
macro_rules! match_scalars {
    (into $value:expr, $from:ident => $to:ident { $($rest:tt)* }) => {
        match $value {
            $from::None => $to::None,
            $from::Bool(b) => $to::Bool(b),
            $from::Int(i) => $to::Int(i),
            $from::BigInt(i) => $to::BigInt(i),
            $from::Float(f) => $to::Float(f),
            $from::Bytes(b) => $to::Bytes(b),
            $from::Str(s) => $to::Str(s),
            $($rest)*
        }
    };
    (from_pickle $value:expr, $from:ident => $to:ident { $($rest:tt)* }) => {
        match $value {
            $from::None => $to::None,
            $from::Bool(b) => $to::Bool(b),
            $from::I64(i) => $to::Int(i),
            $from::Int(i) => i64::try_from(&i).map_or($to::BigInt(i), $to::Int),
            $from::F64(f) => $to::Float(f),
            $from::Bytes(b) => $to::Bytes(b),
            $from::String(s) => $to::Str(s),
            $($rest)*
        }
    };
    (to_pickle $value:expr, $from:ident => $to:ident { $($rest:tt)* }) => {
        match $value {
            $from::None => $to::None,
            $from::Bool(b) => $to::Bool(*b),
            $from::Int(i) => $to::I64(*i),
            $from::BigInt(i) => $to::Int(i.clone()),
            $from::Float(f) => $to::F64(*f),
            $from::Bytes(b) => $to::Bytes(b.clone()),
            $from::Str(s) => $to::String(s.clone()),
            $($rest)*
        }
    };
    (serialize $value:expr, $from:ident, $s:ident { $($rest:tt)* }) => {
        match $value {
            $from::None => $s.serialize_unit(),
            $from::Bool(b) => $s.serialize_bool(*b),
            $from::Int(i) => $s.serialize_i64(*i),
            $from::BigInt(i) => serialize_big(i, $s),
            $from::Float(f) => $s.serialize_f64(*f),
            $from::Bytes(b) => $s.serialize_bytes(b),
            $from::Str(v) => $s.serialize_str(v),
            $($rest)*
        }
    };
}

impl PyValue {
    /// A `dict` from key/value pairs.
    ///
    /// ```
    /// use multiproc::pickle::{PyKey, PyValue};
    /// let dict = PyValue::dict([(PyKey::from("a"), PyValue::from(1))]);
    /// assert_eq!(dict.to_string(), r#"{"a": 1}"#);
    /// ```
    pub fn dict(pairs: impl IntoIterator<Item = (PyKey, PyValue)>) -> Self {
        PyValue::Dict(pairs.into_iter().collect())
    }

    /// The key this value would be in a `dict`, or `None` if Python could not hash it (a
    /// `list`, `set` or `dict`, or a tuple holding one).
    ///
    /// ```
    /// use multiproc::pickle::{PyKey, PyValue};
    /// assert_eq!(PyValue::from("a").into_key(), Some(PyKey::from("a")));
    /// assert_eq!(PyValue::List(vec![]).into_key(), None);
    /// ```
    pub fn into_key(self) -> Option<PyKey> {
        Some(match_scalars!(into self, PyValue => PyKey {
            PyValue::Tuple(items) => PyKey::Tuple(
                items
                    .into_iter()
                    .map(PyValue::into_key)
                    .collect::<Option<_>>()?,
            ),
            PyValue::FrozenSet(items) => PyKey::FrozenSet(items),
            PyValue::List(_) | PyValue::Set(_) | PyValue::Dict(_) => return None,
        }))
    }
}

impl PyKey {
    /// The same value as a [`PyValue`].
    ///
    /// ```
    /// use multiproc::pickle::{PyKey, PyValue};
    /// assert_eq!(PyKey::from(2).into_value(), PyValue::Int(2));
    /// ```
    pub fn into_value(self) -> PyValue {
        match_scalars!(into self, PyKey => PyValue {
            PyKey::Tuple(items) => {
                PyValue::Tuple(items.into_iter().map(PyKey::into_value).collect())
            }
            PyKey::FrozenSet(items) => PyValue::FrozenSet(items),
        })
    }

    /// Rank of the kind, the first criterion of the order.
    fn rank(&self) -> u8 {
        match self {
            PyKey::None => 0,
            PyKey::Bool(_) => 1,
            PyKey::Int(_) => 2,
            PyKey::BigInt(_) => 3,
            PyKey::Float(_) => 4,
            PyKey::Bytes(_) => 5,
            PyKey::Str(_) => 6,
            PyKey::Tuple(_) => 7,
            PyKey::FrozenSet(_) => 8,
        }
    }
}

impl Ord for PyKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PyKey::Bool(a), PyKey::Bool(b)) => a.cmp(b),
            (PyKey::Int(a), PyKey::Int(b)) => a.cmp(b),
            (PyKey::BigInt(a), PyKey::BigInt(b)) => a.cmp(b),
            (PyKey::Float(a), PyKey::Float(b)) => a.total_cmp(b),
            (PyKey::Bytes(a), PyKey::Bytes(b)) => a.cmp(b),
            (PyKey::Str(a), PyKey::Str(b)) => a.cmp(b),
            (PyKey::Tuple(a), PyKey::Tuple(b)) => a.cmp(b),
            (PyKey::FrozenSet(a), PyKey::FrozenSet(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PyKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PyKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PyKey {}

macro_rules! from_scalar {
    ($($t:ty => $variant:ident($conv:expr)),* $(,)?) => {$(
        impl From<$t> for PyValue {
            fn from(v: $t) -> Self {
                PyValue::$variant($conv(v))
            }
        }
        impl From<$t> for PyKey {
            fn from(v: $t) -> Self {
                PyKey::$variant($conv(v))
            }
        }
    )*};
}

from_scalar! {
    bool => Bool(|v| v),
    i32 => Int(i64::from),
    i64 => Int(|v| v),
    u32 => Int(i64::from),
    f64 => Float(|v| v),
    &str => Str(str::to_string),
    String => Str(|v| v),
    BigInt => BigInt(|v| v),
}

impl From<Vec<PyValue>> for PyValue {
    /// A `list`.
    fn from(items: Vec<PyValue>) -> Self {
        PyValue::List(items)
    }
}

impl From<PyKey> for PyValue {
    fn from(key: PyKey) -> Self {
        key.into_value()
    }
}

// ---- conversions from and to serde-pickle's types (which do the encoding and decoding) ----

impl From<serde_pickle::Value> for PyValue {
    fn from(value: serde_pickle::Value) -> Self {
        use serde_pickle::Value as V;
        match_scalars!(from_pickle value, V => PyValue {
            V::List(items) => PyValue::List(items.into_iter().map(PyValue::from).collect()),
            V::Tuple(items) => PyValue::Tuple(items.into_iter().map(PyValue::from).collect()),
            V::Set(items) => PyValue::Set(items.into_iter().map(PyKey::from).collect()),
            V::FrozenSet(items) => PyValue::FrozenSet(items.into_iter().map(PyKey::from).collect()),
            V::Dict(items) => PyValue::Dict(
                items
                    .into_iter()
                    .map(|(k, v)| (PyKey::from(k), PyValue::from(v)))
                    .collect(),
            ),
        })
    }
}

impl From<serde_pickle::HashableValue> for PyKey {
    fn from(value: serde_pickle::HashableValue) -> Self {
        use serde_pickle::HashableValue as H;
        match_scalars!(from_pickle value, H => PyKey {
            H::Tuple(items) => PyKey::Tuple(items.into_iter().map(PyKey::from).collect()),
            H::FrozenSet(items) => PyKey::FrozenSet(items.into_iter().map(PyKey::from).collect()),
        })
    }
}

/// `value` as serde-pickle's value, for its exact encoder.
pub(super) fn to_pickle_value(value: &PyValue) -> serde_pickle::Value {
    use serde_pickle::Value as V;
    match_scalars!(to_pickle value, PyValue => V {
        PyValue::List(items) => V::List(items.iter().map(to_pickle_value).collect()),
        PyValue::Tuple(items) => V::Tuple(items.iter().map(to_pickle_value).collect()),
        PyValue::Set(items) => V::Set(items.iter().map(to_pickle_key).collect()),
        PyValue::FrozenSet(items) => V::FrozenSet(items.iter().map(to_pickle_key).collect()),
        PyValue::Dict(items) => V::Dict(
            items
                .iter()
                .map(|(k, v)| (to_pickle_key(k), to_pickle_value(v)))
                .collect(),
        ),
    })
}

fn to_pickle_key(key: &PyKey) -> serde_pickle::HashableValue {
    use serde_pickle::HashableValue as H;
    match_scalars!(to_pickle key, PyKey => H {
        PyKey::Tuple(items) => H::Tuple(items.iter().map(to_pickle_key).collect()),
        PyKey::FrozenSet(items) => H::FrozenSet(items.iter().map(to_pickle_key).collect()),
    })
}

impl fmt::Display for PyValue {
    /// Python's notation of the value (strings in double quotes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&to_pickle_value(self), f)
    }
}

impl fmt::Display for PyKey {
    /// Python's notation of the value (strings in double quotes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&to_pickle_key(self), f)
    }
}

// ---- serde ----

impl Serialize for PyValue {
    /// A tuple as a tuple, a list, set or frozenset as a sequence, a dict as a map, an
    /// integer beyond 64 bits as `i128`/`u128` (which pickle's encoder refuses: use
    /// [`value_to_vec`](super::value_to_vec)).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match_scalars!(serialize self, PyValue, s {
            PyValue::List(items) => serialize_seq(items.iter(), s),
            PyValue::Tuple(items) => serialize_tuple(items, s),
            PyValue::Set(items) | PyValue::FrozenSet(items) => serialize_seq(items.iter(), s),
            PyValue::Dict(items) => {
                let mut map = s.serialize_map(Some(items.len()))?;
                for (k, v) in items {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        })
    }
}

impl Serialize for PyKey {
    /// As the same [`PyValue`] would be.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match_scalars!(serialize self, PyKey, s {
            PyKey::Tuple(items) => serialize_tuple(items, s),
            PyKey::FrozenSet(items) => serialize_seq(items.iter(), s),
        })
    }
}

fn serialize_big<S: Serializer>(i: &BigInt, s: S) -> Result<S::Ok, S::Error> {
    if let Ok(u) = u64::try_from(i) {
        s.serialize_u64(u)
    } else if let Ok(v) = i128::try_from(i) {
        s.serialize_i128(v)
    } else if let Ok(v) = u128::try_from(i) {
        s.serialize_u128(v)
    } else {
        Err(serde::ser::Error::custom(
            "an integer beyond 128 bits has no serde form; encode it with pickle::value_to_vec",
        ))
    }
}

fn serialize_seq<'a, S: Serializer, T: Serialize + 'a>(
    items: impl ExactSizeIterator<Item = &'a T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for item in items {
        seq.serialize_element(item)?;
    }
    seq.end()
}

fn serialize_tuple<S: Serializer, T: Serialize>(items: &[T], s: S) -> Result<S::Ok, S::Error> {
    let mut tuple = s.serialize_tuple(items.len())?;
    for item in items {
        tuple.serialize_element(item)?;
    }
    tuple.end()
}

/// The newtype name a [`PyValue`] asks its deserializer for. This crate's own pickle
/// deserializer (`de.rs`) answers it by handing over the exact value through [`EXACT`];
/// any other deserializer treats it as a transparent newtype, and the value is rebuilt from
/// serde's data model (a sequence becomes a list).
pub(super) const EXACT_TOKEN: &str = "$multiproc::pickle::PyValue";

thread_local! {
    /// The value `de.rs` hands to the visitor it calls next (set right before the call,
    /// cleared right after).
    pub(super) static EXACT: Cell<Option<PyValue>> = const { Cell::new(None) };
}

impl<'de> Deserialize<'de> for PyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(EXACT_TOKEN, ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for PyKey {
    /// As a [`PyValue`], then [`PyValue::into_key`], except that a list or set (how formats
    /// other than pickle spell a tuple or frozenset) becomes a tuple or frozenset.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = PyValue::deserialize(d)?;
        let value = match value {
            PyValue::List(items) => PyValue::Tuple(items),
            PyValue::Set(items) => PyValue::FrozenSet(items),
            other => other,
        };
        value.into_key().ok_or_else(|| {
            de::Error::custom("a list, set or dict cannot be a dict key or set element")
        })
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain Python value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<PyValue, D::Error> {
        match EXACT.take() {
            Some(exact) => Ok(exact),
            None => d.deserialize_any(ValueVisitor),
        }
    }

    fn visit_unit<E>(self) -> Result<PyValue, E> {
        Ok(PyValue::None)
    }

    fn visit_none<E>(self) -> Result<PyValue, E> {
        Ok(PyValue::None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<PyValue, D::Error> {
        PyValue::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<PyValue, E> {
        Ok(PyValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<PyValue, E> {
        Ok(PyValue::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<PyValue, E> {
        Ok(i64::try_from(v).map_or(PyValue::BigInt(BigInt::from(v)), PyValue::Int))
    }

    fn visit_i128<E>(self, v: i128) -> Result<PyValue, E> {
        Ok(i64::try_from(v).map_or(PyValue::BigInt(BigInt::from(v)), PyValue::Int))
    }

    fn visit_u128<E>(self, v: u128) -> Result<PyValue, E> {
        Ok(i64::try_from(v).map_or(PyValue::BigInt(BigInt::from(v)), PyValue::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<PyValue, E> {
        Ok(PyValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<PyValue, E> {
        Ok(PyValue::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<PyValue, E> {
        Ok(PyValue::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<PyValue, E> {
        Ok(PyValue::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<PyValue, E> {
        Ok(PyValue::Bytes(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyValue, A::Error> {
        let mut items = BTreeMap::new();
        while let Some((k, v)) = map.next_entry()? {
            items.insert(k, v);
        }
        Ok(PyValue::Dict(items))
    }
}
