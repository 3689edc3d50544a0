//! Deserializing any type from a decoded [`PyValue`]: how [`from_slice`](super::from_slice)
//! reads a pickle into a typed value.
//!
//! Why not `serde-pickle`'s own deserializer: serde's data model has no tuple/list or
//! set/list distinction for a self-describing read, so through it a [`PyValue`] nested
//! anywhere in the requested type would get a tuple as a list. This one answers a
//! `PyValue`'s request ([`EXACT_TOKEN`]) with the exact value; for everything else it reads
//! values as `serde-pickle` does (same enum forms, same integer limits).

use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, VariantAccess, Visitor,
};

use super::value::{EXACT, EXACT_TOKEN, PyValue};

/// A [`PyValue`] as a serde deserializer.
pub(super) struct ValueDeserializer(pub(super) PyValue);

/// So sequences and maps of them can use serde's `SeqDeserializer`/`MapDeserializer`.
impl<'de> IntoDeserializer<'de, Error> for ValueDeserializer {
    type Deserializer = ValueDeserializer;

    fn into_deserializer(self) -> ValueDeserializer {
        self
    }
}

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            PyValue::None => visitor.visit_unit(),
            PyValue::Bool(b) => visitor.visit_bool(b),
            PyValue::Int(i) => visitor.visit_i64(i),
            PyValue::BigInt(i) => {
                if let Ok(u) = u64::try_from(&i) {
                    visitor.visit_u64(u)
                } else if let Ok(v) = i128::try_from(&i) {
                    visitor.visit_i128(v)
                } else if let Ok(v) = u128::try_from(&i) {
                    visitor.visit_u128(v)
                } else {
                    Err(de::Error::custom(format!(
                        "integer {i} is beyond 128 bits (decode it into a PyValue)"
                    )))
                }
            }
            PyValue::Float(f) => visitor.visit_f64(f),
            PyValue::Bytes(b) => visitor.visit_byte_buf(b),
            PyValue::Str(s) => visitor.visit_string(s),
            PyValue::List(items) | PyValue::Tuple(items) => visit_seq(
                SeqDeserializer::new(items.into_iter().map(ValueDeserializer)),
                visitor,
            ),
            PyValue::Set(items) | PyValue::FrozenSet(items) => visit_seq(
                SeqDeserializer::new(items.into_iter().map(|k| ValueDeserializer(k.into_value()))),
                visitor,
            ),
            PyValue::Dict(items) => {
                let mut map = MapDeserializer::new(
                    items
                        .into_iter()
                        .map(|(k, v)| (ValueDeserializer(k.into_value()), ValueDeserializer(v))),
                );
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            PyValue::None => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == EXACT_TOKEN {
            // A PyValue asks: hand it the value itself. Cleared after the call whatever the
            // visitor did, so no later read can find a stale value.
            EXACT.set(Some(self.0));
            let result = visitor.visit_newtype_struct(ValueDeserializer(PyValue::None));
            EXACT.set(None);
            result
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    /// serde-pickle's enum forms: a string (unit variant), a one-entry dict `{variant:
    /// payload}`, or a tuple `(variant, payload)` / `(variant,)`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (variant, payload) = match self.0 {
            PyValue::Str(s) => (PyValue::Str(s), None),
            PyValue::Dict(items) if items.len() == 1 => items
                .into_iter()
                .next()
                .map(|(k, v)| (k.into_value(), Some(v)))
                .unwrap_or((PyValue::None, None)),
            PyValue::Tuple(mut items) if items.len() == 2 => {
                let payload = items.pop();
                let variant = items.pop().unwrap_or(PyValue::None);
                (variant, payload)
            }
            PyValue::Tuple(mut items) if !items.is_empty() => {
                (items.pop().unwrap_or(PyValue::None), None)
            }
            other => {
                return Err(de::Error::custom(format!(
                    "an enum must be a str, a one-entry dict or a tuple, not {other}"
                )));
            }
        };
        visitor.visit_enum(Enum { variant, payload })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

fn visit_seq<'de, I, V>(mut seq: SeqDeserializer<I, Error>, visitor: V) -> Result<V::Value, Error>
where
    I: Iterator,
    I::Item: IntoDeserializer<'de, Error>,
    V: Visitor<'de>,
{
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

/// An enum read from a variant name and its payload.
struct Enum {
    variant: PyValue,
    payload: Option<PyValue>,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = Error;
    type Variant = Payload;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Payload), Error> {
        let variant = seed.deserialize(ValueDeserializer(self.variant))?;
        Ok((variant, Payload(self.payload)))
    }
}

/// The payload of an enum variant, if it had one.
struct Payload(Option<PyValue>);

impl Payload {
    fn value(self) -> Result<ValueDeserializer, Error> {
        self.0
            .map(ValueDeserializer)
            .ok_or_else(|| de::Error::custom("the enum variant has no payload"))
    }
}

impl<'de> VariantAccess<'de> for Payload {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(self.value()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.value()?.deserialize_any(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()?.deserialize_any(visitor)
    }
}
