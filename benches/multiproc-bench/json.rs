//! The JSON records the benchmark prints (the same format as the Python baseline).

#[allow(unused_imports)]
use crate::*;

// ------------------------------------------------------------------------------------ JSON

/// A JSON value whose objects keep their insertion order (as Python's dicts do).
#[derive(Clone, Debug)]
pub(crate) enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// A JSON object under construction.
pub(crate) type Params = Vec<(String, J)>;

impl From<f64> for J {
    fn from(x: f64) -> J {
        J::Float(x)
    }
}
impl From<usize> for J {
    fn from(x: usize) -> J {
        J::Int(x as i64)
    }
}
impl From<u32> for J {
    fn from(x: u32) -> J {
        J::Int(x.into())
    }
}
impl From<i64> for J {
    fn from(x: i64) -> J {
        J::Int(x)
    }
}
impl From<bool> for J {
    fn from(x: bool) -> J {
        J::Bool(x)
    }
}
impl From<&str> for J {
    fn from(x: &str) -> J {
        J::Str(x.to_string())
    }
}
impl From<String> for J {
    fn from(x: String) -> J {
        J::Str(x)
    }
}
impl From<&[f64]> for J {
    fn from(x: &[f64]) -> J {
        J::Arr(x.iter().map(|&v| J::Float(v)).collect())
    }
}
impl<T: Into<J>> From<Option<T>> for J {
    fn from(x: Option<T>) -> J {
        x.map_or(J::Null, Into::into)
    }
}

/// Build a [`Params`] list: `params! { "key" => value, ... }`.
macro_rules! params {
    ($($k:expr => $v:expr),* $(,)?) => {
        vec![$(($k.to_string(), J::from($v))),*]
    };
}

impl J {
    /// Round every float to `sig` significant digits (Python's `_r`).
    pub(crate) fn rounded(self, sig: usize) -> J {
        match self {
            J::Float(x) => J::Float(round_sig(x, sig)),
            J::Arr(v) => J::Arr(v.into_iter().map(|x| x.rounded(sig)).collect()),
            J::Obj(v) => J::Obj(v.into_iter().map(|(k, x)| (k, x.rounded(sig))).collect()),
            other => other,
        }
    }

    /// Serialize like Python's `json.dumps` (", " and ": " separators, ASCII only).
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => {
                let _ = write!(out, "{i}");
            }
            J::Float(x) => out.push_str(&py_float(*x)),
            J::Str(s) => write_json_str(s, out),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_str(k, out);
                    out.push_str(": ");
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

pub(crate) fn round_sig(x: f64, sig: usize) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{:.*e}", sig.saturating_sub(1), x)
        .parse()
        .unwrap_or(x)
}

/// A float as Python's `repr` writes it (JSON `null` for NaN and infinities).
pub(crate) fn py_float(x: f64) -> String {
    if !x.is_finite() {
        return "null".into();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { s + ".0" }
}

pub(crate) fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
