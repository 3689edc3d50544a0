//! What a child runs, and how a re-executed child finds it.
//!
//! A child started by *spawn* or by the *fork server* is a fresh copy of the same executable,
//! so it cannot receive a closure. It receives an [`EntryPoint`]: the distance in bytes from a
//! fixed function of this crate ([`anchor`]) to a monomorphised trampoline `run_task::<T>`.
//! The executable is the same file (`/proc/self/exe`), so that distance is the same in every
//! copy whatever address-space randomisation did; the child adds it to its own `anchor` and
//! calls the trampoline, which decodes a `T` from the task message and runs it. A second
//! distance travels along as a fingerprint so that a mismatch (which would mean a different
//! executable) is reported instead of jumping into the wrong code.
//!
//! Two kinds of task exist: a user type implementing [`Run`] (the "class-style" process), and
//! [`FnTask`], a function item or non-capturing closure together with its argument.

use std::marker::PhantomData;
use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::child::{self, Outcome};
use crate::handle;

/// A unit of work a child process can run: its data travels to the child, then `run` is
/// called there and its output travels back (the Rust form of subclassing Python's
/// `Process` and overriding `run`).
///
/// ```
/// use multiproc::{Process, Run};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Countdown { from: u32 }
///
/// impl Run for Countdown {
///     type Output = Vec<u32>;
///     fn run(self) -> Vec<u32> { (0..=self.from).rev().collect() }
/// }
///
/// # fn main() -> Result<(), multiproc::ProcessError> {
/// let child = Process::builder().start_run(Countdown { from: 3 })?;
/// assert_eq!(child.join()?, vec![3, 2, 1, 0]);
/// # Ok(())
/// # }
/// ```
pub trait Run: Serialize + DeserializeOwned + 'static {
    /// What the child sends back.
    type Output: Serialize + DeserializeOwned + 'static;
    /// The child's work.
    fn run(self) -> Self::Output;
}

/// A function item (or non-capturing closure) and its argument, as one [`Run`] task.
pub(crate) struct FnTask<F, A> {
    arg: A,
    func: PhantomData<fn() -> F>,
}

impl<F, A> FnTask<F, A> {
    pub(crate) fn new(_func: F, arg: A) -> Self {
        // A capturing closure would need its captures serialized, which Rust cannot do; fail
        // the build rather than run code without its data.
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "Process::start needs a function item or a non-capturing closure (data goes in \
                 the argument); for a capturing closure use Builder::fork"
            )
        };
        FnTask {
            arg,
            func: PhantomData,
        }
    }
}

impl<F, A, R> Run for FnTask<F, A>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type Output = R;
    fn run(self) -> R {
        const { assert!(std::mem::size_of::<F>() == 0) };
        // SAFETY: `F` is zero-sized (checked at compile time), and a value of `F` exists: the
        // caller handed one to `Builder::start`. `F: Copy` says a bitwise copy of a value is
        // another valid value, and a bitwise copy of a zero-sized value is zero bytes, which is
        // exactly what `zeroed` produces (nothing is read or written). So this is a copy of the
        // caller's function value, sent to this process as the zero bytes it consists of (with
        // fork, literally the same memory). A `Copy` type cannot rely on being constructed only
        // once, and function pointers (not zero-sized) are excluded by the size check; in
        // practice `F` is a function item or a closure whose captures are all zero-sized.
        let func: F = unsafe { std::mem::zeroed() };
        func(self.arg)
    }
}

impl<F, A: Serialize> Serialize for FnTask<F, A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.arg.serialize(serializer)
    }
}

impl<'de, F, A: Deserialize<'de>> Deserialize<'de> for FnTask<F, A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(FnTask {
            arg: A::deserialize(deserializer)?,
            func: PhantomData,
        })
    }
}

/// The signature every trampoline has: decode the task message, run it, report its output.
pub(crate) type Trampoline = fn(&[u8], Vec<OwnedFd>) -> Result<(), String>;

/// Decode a `T` from its message, run it, and report the result to the parent.
fn run_task<T: Run>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(), String> {
    let task: T = handle::decode(bytes, fds).map_err(|e| e.to_string())?;
    let output = task.run();
    child::report(&Outcome::Returned(&output))
}

/// The fixed point every entry point is measured from.
#[inline(never)]
fn anchor() -> u64 {
    std::hint::black_box(0x6d75_6c74_6970_726f)
}

fn distance(f: usize) -> i64 {
    f.wrapping_sub(anchor as fn() -> u64 as usize) as i64
}

/// Identifies this build of the executable: its ELF build-id (unique per link), mixed with
/// the distance between two of its functions. Two different programs, or two builds of one,
/// disagree, so a code reference from elsewhere (a `Manager::connect` client, a barrier sent
/// over a `Listener`) is refused instead of jumping into unrelated code. Without a build-id
/// (a linker told not to write one) the executable file's size and modification time stand
/// in for it.
fn fingerprint() -> i64 {
    static FINGERPRINT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *FINGERPRINT.get_or_init(|| {
        let layout =
            distance(EntryPoint::resolve as fn(EntryPoint) -> Result<Trampoline, String> as usize);
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

/// `anchor + offset`, if that lies inside this executable's code.
fn code_at(offset: i64) -> Option<usize> {
    let address = (anchor as fn() -> u64 as usize).wrapping_add(offset as usize);
    crate::sys::image::main_image()
        .contains_code(address)
        .then_some(address)
}

/// Where a child finds the code to run (see the module documentation).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct EntryPoint {
    offset: i64,
    fingerprint: i64,
}

impl EntryPoint {
    /// The entry point that runs tasks of type `T`.
    pub(crate) fn of<T: Run>() -> EntryPoint {
        EntryPoint {
            offset: distance(run_task::<T> as Trampoline as usize),
            fingerprint: fingerprint(),
        }
    }

    /// The trampoline this entry point designates in the running executable.
    pub(crate) fn resolve(self) -> Result<Trampoline, String> {
        if self.fingerprint != fingerprint() {
            return Err(
                "the child is not running the same build of the executable as its parent \
                 (entry point fingerprint mismatch)"
                    .into(),
            );
        }
        let address = code_at(self.offset)
            .ok_or("an entry point outside this executable's code was refused")?;
        // SAFETY: both processes run the same build of the executable (the fingerprint,
        // derived from its build-id, agrees), so `anchor + offset` is the address of the
        // `run_task::<T>` instance the parent measured, which has exactly the `Trampoline`
        // signature; and it lies inside this executable's code.
        Ok(unsafe { std::mem::transmute::<usize, Trampoline>(address) })
    }
}

/// Plain functions (not tasks) that must be found in other processes, such as a barrier's
/// action, travel the same way as entry points: as a distance from [`anchor`].
pub(crate) mod code {
    use super::{code_at, distance, fingerprint};

    /// `(offset, fingerprint)` of the function at `address`.
    pub(crate) fn offset_of(address: usize) -> (i64, i64) {
        (distance(address), fingerprint())
    }

    /// The address in this process of a function recorded by `offset_of`, if this process
    /// runs the same build of the executable and the address lies inside its code.
    pub(crate) fn address_of(offset: i64, recorded_fingerprint: i64) -> Option<usize> {
        if recorded_fingerprint != fingerprint() {
            return None;
        }
        code_at(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() {}

    #[test]
    fn a_code_reference_of_this_build_resolves_to_the_function() {
        let (offset, print) = code::offset_of(sample as fn() as usize);
        assert_eq!(
            code::address_of(offset, print),
            Some(sample as fn() as usize)
        );
    }

    #[test]
    fn a_code_reference_from_another_build_is_refused() {
        let (offset, print) = code::offset_of(sample as fn() as usize);
        assert_eq!(code::address_of(offset, print ^ 1), None);
        let entry = EntryPoint {
            offset,
            fingerprint: print.wrapping_add(1),
        };
        assert!(entry.resolve().unwrap_err().contains("same build"));
    }

    #[test]
    fn a_code_reference_outside_the_executable_is_refused() {
        let print = fingerprint();
        let far = distance(0x10); // an address no executable is loaded at
        assert_eq!(code::address_of(far, print), None);
        let entry = EntryPoint {
            offset: far,
            fingerprint: print,
        };
        assert!(entry.resolve().is_err());
    }
}
