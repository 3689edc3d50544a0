//! The typed proxies of a manager's objects: each holds a `Remote`
//! and turns its methods into one request each. The first two macros give every proxy the
//! same `Clone`, `Debug`, serde and construction impls; the third those of a proxy that
//! wraps another (`ArrayProxy`, `JoinableQueueProxy`).

use serde::de::DeserializeOwned;

use crate::manager::ManagerError;
use crate::manager::server::Reply;
use crate::manager::session::{decode, unexpected};

macro_rules! proxy_basics {
    ($name:ident < $($p:ident),* >) => {
        impl<$($p),*> Clone for $name<$($p),*> {
            fn clone(&self) -> Self {
                $name { remote: self.remote.clone(), types: PhantomData }
            }
        }
        impl<$($p),*> fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.remote)
            }
        }
        impl<$($p),*> Serialize for $name<$($p),*> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.remote.serialize(s)
            }
        }
        impl<'de, $($p),*> Deserialize<'de> for $name<$($p),*> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name { remote: Remote::deserialize(d)?, types: PhantomData })
            }
        }
        impl<$($p),*> FromRemote for $name<$($p),*> {
            fn from_remote(remote: Remote) -> Self {
                $name { remote, types: PhantomData }
            }
        }
    };
}

macro_rules! untyped_proxy {
    ($name:ident) => {
        impl Clone for $name {
            fn clone(&self) -> Self {
                $name {
                    remote: self.remote.clone(),
                }
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.remote)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.remote.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name {
                    remote: Remote::deserialize(d)?,
                })
            }
        }
        impl FromRemote for $name {
            fn from_remote(remote: Remote) -> Self {
                $name { remote }
            }
        }
    };
}

/// `Clone` and `Debug` for a proxy that wraps another one, held in its field `$field`
/// (without the `T: Clone`/`T: Debug` bounds a derive would add).
macro_rules! wrapping_proxy {
    ($name:ident, $field:ident) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    $field: self.$field.clone(),
                }
            }
        }
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.$field.remote)
            }
        }
    };
}

/// The items of a reply that carries several.
fn many<T: DeserializeOwned>(reply: Reply) -> Result<Vec<T>, ManagerError> {
    match reply {
        Reply::Many(items) => items.iter().map(|b| decode(b)).collect(),
        other => Err(unexpected(&other)),
    }
}

mod dict;
mod list;
mod managed;
mod namespace;
mod queue;
mod sync;
mod value;

pub use dict::DictProxy;
pub use list::{ArrayProxy, ListProxy};
pub(super) use managed::custom;
pub use managed::{Managed, ManagedProxy};
pub use namespace::NamespaceProxy;
pub use queue::{JoinableQueueProxy, QueueProxy};
pub use sync::{
    BarrierProxy, ConditionProxy, EventProxy, LockProxy, LockProxyGuard, SemaphoreProxy,
};
pub use value::ValueProxy;
