//! The typed proxies of a manager's objects: each holds a `Remote`
//! and turns its methods into one request each. The two macros give every proxy the same
//! `Clone`, `Debug`, serde and construction impls.

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
