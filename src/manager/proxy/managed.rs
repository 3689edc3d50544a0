//! [`Managed`]: your own types served by a manager, and their [`ManagedProxy`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::code::{Borrowing, CodeRef};
use crate::manager::ManagerError;
use crate::manager::server::{self, Op};
use crate::manager::session::{FromRemote, Remote, decode, encode, required};

/// A type of your own that a manager can hold (Python's `BaseManager.register`): its state
/// lives in the manager's server process and proxies send it requests. The server runs the
/// same executable, so `handle` is your code, found there like a task's function.
///
/// A panic in `handle` fails that call with [`ManagerError::Refused`]; the state keeps
/// whatever the handler had done before panicking.
///
/// ```
/// use multiproc::manager::Managed;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Inventory { items: Vec<String> }
///
/// #[derive(Serialize, Deserialize)]
/// enum Ask { Add(String), Count }
///
/// impl Managed for Inventory {
///     type Request = Ask;
///     type Reply = usize;
///     fn handle(&mut self, ask: Ask) -> usize {
///         if let Ask::Add(item) = ask {
///             self.items.push(item);
///         }
///         self.items.len()
///     }
/// }
///
/// let manager = multiproc::Manager::start()?;
/// let inventory = manager.create(Inventory::default())?;
/// inventory.call(&Ask::Add("rope".into()))?;
/// assert_eq!(inventory.call(&Ask::Count)?, 1);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub trait Managed: Serialize + DeserializeOwned + Send + 'static {
    /// What a proxy sends.
    type Request: Serialize + DeserializeOwned;
    /// What the server answers.
    type Reply: Serialize + DeserializeOwned;
    /// Serve one request (in the server process, one at a time).
    fn handle(&mut self, request: Self::Request) -> Self::Reply;
}

/// Decode the initial state of a `T` (runs in the server).
fn make_managed<T: Managed>(bytes: &[u8]) -> Result<Box<dyn std::any::Any + Send>, String> {
    let value: T = decode(bytes).map_err(|e| e.to_string())?;
    Ok(Box::new(value))
}

/// Serve one request to a `T` (runs in the server).
fn call_managed<T: Managed>(
    state: &mut (dyn std::any::Any + Send),
    request: &[u8],
) -> Result<Vec<u8>, String> {
    let state = state
        .downcast_mut::<T>()
        .ok_or_else(|| format!("the object is not a {}", std::any::type_name::<T>()))?;
    let request: T::Request = decode(request).map_err(|e| e.to_string())?;
    let reply = state.handle(request);
    Ok(encode(&reply).map_err(|e| e.to_string())?.into_vec())
}

/// How the server finds `T`'s code, and its initial state.
pub(in crate::manager) fn custom<T: Managed>(initial: &T) -> Result<server::Custom, ManagerError> {
    let make: server::MakeFn = make_managed::<T>;
    let call: server::CallFn = call_managed::<T>;
    Ok(server::Custom {
        make: CodeRef::of(Borrowing(make)),
        call: CodeRef::of(Borrowing(call)),
        initial: encode(initial)?,
    })
}

/// A proxy for a [`Managed`] value of your own type; see [`Manager::create`](crate::manager::Manager::create).
///
/// ```
/// # use multiproc::manager::Managed;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Echo;
/// # impl Managed for Echo {
/// #     type Request = String;
/// #     type Reply = String;
/// #     fn handle(&mut self, s: String) -> String { s }
/// # }
/// let manager = multiproc::Manager::start()?;
/// let echo = manager.create(Echo)?;
/// assert_eq!(echo.call(&"hi".to_string())?, "hi");
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct ManagedProxy<T> {
    remote: Remote,
    types: PhantomData<fn() -> T>,
}

proxy_basics!(ManagedProxy<T>);

impl<T: Managed> ManagedProxy<T> {
    /// Send `request` to the value in the server and return its reply.
    ///
    /// ```
    /// # use multiproc::manager::Managed;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Double;
    /// # impl Managed for Double {
    /// #     type Request = u32;
    /// #     type Reply = u32;
    /// #     fn handle(&mut self, x: u32) -> u32 { x * 2 }
    /// # }
    /// let manager = multiproc::Manager::start()?;
    /// assert_eq!(manager.create(Double)?.call(&21)?, 42);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn call(&self, request: &T::Request) -> Result<T::Reply, ManagerError> {
        required(self.remote.call(Op::Custom(encode(request)?))?)
    }
}
