//! Code references: naming a function of this executable so that another process running
//! the same build can call it.
//!
//! A child started by *spawn* or by the *fork server*, a pool worker, the manager's server and
//! any process a barrier with an action reaches is a fresh copy of the same executable (or a
//! fork of one), so it cannot receive a closure or a function pointer. It receives a
//! [`CodeRef`]: the distance in bytes from a fixed function of this crate ([`anchor`]) to the
//! function, plus a *fingerprint* of the build. Address-space randomisation moves the whole
//! executable, so the distance is the same in every copy; the receiver adds it to its own
//! `anchor`.
//!
//! Why resolving is sound, in one place: a reference resolves only if
//! - its fingerprint equals this process's: the executable's ELF build-id (unique per link)
//!   mixed with the distance between two of its functions, so another program, or another
//!   build of the same one, is refused (a `Manager::connect` client of a different binary, a
//!   barrier sent over a `Listener`), and
//! - the address lies inside this executable's loaded code (`sys::image`).
//!
//! Together: the address is the function that was measured, in the same machine code, so
//! calling it with the type it was measured as ([`CodeRef<F>`] carries that type) is calling
//! that function. The one `transmute` back to a function pointer is in [`code_fn!`], for the
//! function-pointer types listed there.
//!
//! Two families of function types are named this way:
//! - the user's task functions, `fn(A) -> R` (and `fn(A, B) -> R`, ... for `starmap`), for
//!   every `A` and `R`: the public API takes function pointers, so a capturing closure is
//!   refused by the type checker at the call site;
//! - the library's own trampolines, which take borrowed arguments (`for<'a> fn(&'a [u8])`).
//!   Their types would overlap with the generic `fn(A) -> R` (rustc's `coherence_leak_check`
//!   treats `for<'a> fn(&'a T)` as a possible instance of `fn(A)`), so they are named through
//!   [`Borrowing`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The fixed point every reference is measured from.
#[inline(never)]
fn anchor() -> u64 {
    std::hint::black_box(0x6d75_6c74_6970_726f)
}

fn distance(address: usize) -> i64 {
    address.wrapping_sub(anchor as fn() -> u64 as usize) as i64
}

/// Identifies this build of the executable: its ELF build-id, mixed with the distance between
/// two of its functions. Without a build-id (a linker told not to write one) the executable
/// file's size, modification time and inode stand in for it.
pub(crate) fn fingerprint() -> i64 {
    static FINGERPRINT: OnceLock<i64> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| {
        let layout = distance(fingerprint as fn() -> i64 as usize);
        let identity = match &crate::sys::image::main_image().build_id {
            Some(id) => id.clone(),
            None => std::fs::metadata("/proc/self/exe")
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    [
                        m.len().to_le_bytes(),
                        m.mtime().to_le_bytes(),
                        m.ino().to_le_bytes(),
                    ]
                    .concat()
                })
                .unwrap_or_default(),
        };
        // FNV-1a, seeded with the layout distance.
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ layout as u64;
        for b in identity {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h as i64
    })
}

/// Why a [`CodeRef`] did not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodeError {
    /// Measured in another program or another build of this one.
    #[error(
        "code reference from another program or another build of this one (build-id \
         fingerprint mismatch): processes sharing tasks must run the same executable"
    )]
    OtherBuild,
    /// The address is not inside this executable's code.
    #[error("code reference outside this executable's code")]
    OutsideCode,
}

/// A function-pointer type a [`CodeRef`] can carry.
///
/// Public only in name (this module is private to the crate), so that the public
/// [`StarArgs`](crate::StarArgs) can require it of its function-pointer types; nothing outside
/// the crate can name or implement it.
///
/// # Safety
/// `from_address` must only be implemented as the inverse of `address` for a function-pointer
/// type (done once, by [`code_fn!`]).
pub unsafe trait CodeFn: Copy + 'static {
    /// The function's address.
    fn address(self) -> usize;
    /// # Safety
    /// `address` must be the address of a function of exactly this type.
    unsafe fn from_address(address: usize) -> Self;
}

/// A library trampoline of function-pointer type `F`, which takes borrowed arguments, as a
/// [`CodeRef`] carries it (see the module documentation for why it is wrapped).
#[derive(Clone, Copy)]
pub(crate) struct Borrowing<F>(pub F);

/// Implements [`CodeFn`] for function-pointer types. Two forms, each of which can only name a
/// function-pointer type:
/// - `code_fn!(<A, R> fn(A) -> R; ...)`: generic function pointers, spelled out;
/// - `code_fn!(borrowing Alias, ...)`: [`Borrowing<Alias>`] for a type alias of a
///   function-pointer type whose arguments are borrowed.
macro_rules! code_fn {
    ($(<$($g:ident),+> fn($($a:ident),*) -> $r:ident);+ $(;)?) => {$(
        // SAFETY: the implementing type is spelled as a function-pointer type; `address` is
        // its address, and `from_address` turns such an address back into the same type.
        unsafe impl<$($g: 'static),+> $crate::code::CodeFn for fn($($a),*) -> $r {
            fn address(self) -> usize {
                self as usize
            }
            unsafe fn from_address(address: usize) -> Self {
                // SAFETY: the caller promises `address` is a function of exactly this type.
                unsafe { std::mem::transmute::<usize, fn($($a),*) -> $r>(address) }
            }
        }
    )+};
    (borrowing $($t:ty),+ $(,)?) => {$(
        // SAFETY: every invocation names an alias of a function-pointer type (the
        // `transmute` checks at least its size); `address` is its address, and
        // `from_address` turns such an address back into the same type.
        unsafe impl $crate::code::CodeFn for $crate::code::Borrowing<$t> {
            fn address(self) -> usize {
                self.0 as usize
            }
            unsafe fn from_address(address: usize) -> Self {
                // SAFETY: the caller promises `address` is a function of type `$t`.
                $crate::code::Borrowing(unsafe { std::mem::transmute::<usize, $t>(address) })
            }
        }
    )+};
}
pub(crate) use code_fn;

// The barrier action, and the user's task functions: one argument for `Process::start`,
// `Pool::map` and the executor (a unit result for initializers), up to six for `starmap`.
code_fn! {
    <R> fn() -> R;
    <A, R> fn(A) -> R;
    <A, B, R> fn(A, B) -> R;
    <A, B, C, R> fn(A, B, C) -> R;
    <A, B, C, D, R> fn(A, B, C, D) -> R;
    <A, B, C, D, E, R> fn(A, B, C, D, E) -> R;
    <A, B, C, D, E, G, R> fn(A, B, C, D, E, G) -> R;
}

/// A function of type `F` of this executable, resolvable in another process of the same build.
pub(crate) struct CodeRef<F> {
    offset: i64,
    fingerprint: i64,
    kind: PhantomData<F>,
}

impl<F: CodeFn> CodeRef<F> {
    /// A reference to `f`.
    pub(crate) fn of(f: F) -> CodeRef<F> {
        CodeRef {
            offset: distance(f.address()),
            fingerprint: fingerprint(),
            kind: PhantomData,
        }
    }

    /// The function in this process.
    pub(crate) fn resolve(self) -> Result<F, CodeError> {
        if self.fingerprint != fingerprint() {
            return Err(CodeError::OtherBuild);
        }
        let address = (anchor as fn() -> u64 as usize).wrapping_add(self.offset as usize);
        if !crate::sys::image::main_image().contains_code(address) {
            return Err(CodeError::OutsideCode);
        }
        // SAFETY: the fingerprint says this process runs the build in which `of` measured a
        // function of type `F` at this distance from `anchor`, and the address lies inside
        // this executable's code: it is that function (see the module documentation).
        Ok(unsafe { F::from_address(address) })
    }

    /// The reference as two words (to store in shared memory).
    pub(crate) fn to_parts(self) -> (i64, i64) {
        (self.offset, self.fingerprint)
    }

    /// A reference stored with [`to_parts`](CodeRef::to_parts); checked when resolved.
    pub(crate) fn from_parts((offset, fingerprint): (i64, i64)) -> CodeRef<F> {
        CodeRef {
            offset,
            fingerprint,
            kind: PhantomData,
        }
    }
}

impl<F> Clone for CodeRef<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for CodeRef<F> {}

impl<F> fmt::Debug for CodeRef<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeRef({:+#x})", self.offset)
    }
}

impl<F> Serialize for CodeRef<F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.offset, self.fingerprint).serialize(serializer)
    }
}

impl<'de, F> Deserialize<'de> for CodeRef<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (offset, fingerprint) = <(i64, i64)>::deserialize(deserializer)?;
        Ok(CodeRef {
            offset,
            fingerprint,
            kind: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() {}

    #[test]
    fn a_reference_of_this_build_resolves_to_the_function() {
        let r = CodeRef::of(sample as fn());
        assert_eq!(r.resolve().map(|f| f as usize), Ok(sample as fn() as usize));
        let back = CodeRef::<fn()>::from_parts(r.to_parts());
        assert_eq!(
            back.resolve().map(|f| f as usize),
            Ok(sample as fn() as usize)
        );
    }

    #[test]
    fn a_reference_from_another_build_is_refused() {
        let (offset, print) = CodeRef::of(sample as fn()).to_parts();
        let other = CodeRef::<fn()>::from_parts((offset, print ^ 1));
        assert_eq!(
            other.resolve().map(|f| f as usize),
            Err(CodeError::OtherBuild)
        );
    }

    #[test]
    fn a_reference_outside_the_executable_is_refused() {
        let far = CodeRef::<fn()>::from_parts((distance(0x10), fingerprint()));
        assert_eq!(
            far.resolve().map(|f| f as usize),
            Err(CodeError::OutsideCode)
        );
    }
}
