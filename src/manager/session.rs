//! The client side of the wire: where a manager is ([`Endpoint`]), the per-thread
//! connections to it ([`Session`]), what a proxy holds ([`Remote`]), and the helpers that
//! turn the server's replies into values.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::ManagerError;
use super::server::Kind;
use super::server::{Op, Reply, Request};
use crate::connection::Connection;
use crate::handle::CodecError;
use crate::listener::{Address, Client};

/// Where a manager is and how to authenticate to it; shared by every proxy of it.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Endpoint {
    pub(super) address: Address,
    pub(super) authkey: ByteBuf,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Connections to a manager: one per thread (as in Python), so that a thread blocked in
/// the server (a lock, a queue) never holds up another, and a lock belongs to the thread
/// that took it. Opened on first use.
pub(super) struct Session {
    pub(super) endpoint: Endpoint,
    /// The process that opened them (a forked child must open its own), and the idle ones.
    conns: Mutex<(u32, HashMap<ThreadId, Connection>)>,
}

impl Session {
    pub(super) fn new(endpoint: Endpoint) -> Arc<Session> {
        Arc::new(Session {
            endpoint,
            conns: Mutex::new((0, HashMap::new())),
        })
    }

    /// The idle connections of this process (a forked child starts with none).
    fn idle(&self) -> MutexGuard<'_, (u32, HashMap<ThreadId, Connection>)> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let me = crate::sys::getpid();
        if conns.0 != me {
            *conns = (me, HashMap::new());
        }
        conns
    }

    /// This thread's connection, taken out of the pool for the length of a call.
    pub(super) fn take(&self) -> Result<Connection, ManagerError> {
        let existing = self.idle().1.remove(&std::thread::current().id());
        match existing {
            Some(conn) => Ok(conn),
            None => Client::connect(&self.endpoint.address, Some(&self.endpoint.authkey))
                .map_err(|e| self.disconnected(e)),
        }
    }

    /// Give this thread's connection back after a call that left it in a known state.
    pub(super) fn put_back(&self, conn: Connection) {
        self.idle().1.insert(std::thread::current().id(), conn);
    }

    fn disconnected(&self, reason: impl fmt::Display) -> ManagerError {
        ManagerError::Disconnected {
            address: self.endpoint.address.to_string(),
            reason: reason.to_string(),
        }
    }

    /// One request, one reply.
    pub(super) fn call(&self, request: &Request) -> Result<Reply, ManagerError> {
        let mut conn = self.take()?;
        let result = conn.send(request).and_then(|()| conn.recv::<Reply>());
        match result {
            Ok(reply) => {
                self.put_back(conn);
                match reply {
                    Reply::Failed(reason) => Err(ManagerError::Refused(reason)),
                    reply => Ok(reply),
                }
            }
            // The connection is dropped: the next call reconnects (or reports the same).
            Err(e) => Err(self.disconnected(e)),
        }
    }

    pub(super) fn create(
        self: &Arc<Self>,
        kind: Kind,
        name: Option<&str>,
    ) -> Result<u64, ManagerError> {
        let request = Request::Create {
            kind,
            name: name.map(str::to_string),
        };
        match self.call(&request)? {
            Reply::Created(id) => Ok(id),
            other => Err(unexpected(&other)),
        }
    }
}

pub(super) fn unexpected(reply: &Reply) -> ManagerError {
    ManagerError::Refused(format!("unexpected reply {reply:?}"))
}

/// What every proxy holds: the session and the object's id. Serialized, it is the endpoint
/// and the id; the receiving process opens its own connection on first use.
#[derive(Clone)]
pub(super) struct Remote {
    pub(super) session: Arc<Session>,
    pub(super) id: u64,
}

impl Remote {
    pub(super) fn call(&self, op: Op) -> Result<Reply, ManagerError> {
        self.session.call(&Request::Call { id: self.id, op })
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} at {}", self.id, self.session.endpoint.address)
    }
}

impl Serialize for Remote {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.session.endpoint, self.id).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Remote {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (endpoint, id) = <(Endpoint, u64)>::deserialize(deserializer)?;
        Ok(Remote {
            session: Session::new(endpoint),
            id,
        })
    }
}

pub(super) trait FromRemote {
    fn from_remote(remote: Remote) -> Self;
}

pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<ByteBuf, ManagerError> {
    let mut out = Vec::new();
    let fds = crate::handle::encode(value, &mut out)?;
    if !fds.is_empty() {
        return Err(ManagerError::Codec(CodecError::Encode {
            type_name: std::any::type_name::<T>(),
            reason: "values in a manager cannot hold OS handles".into(),
        }));
    }
    Ok(ByteBuf::from(out))
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ManagerError> {
    Ok(crate::handle::decode(bytes, Vec::<OwnedFd>::new())?)
}

pub(super) fn maybe<T: DeserializeOwned>(reply: Reply) -> Result<Option<T>, ManagerError> {
    match reply {
        Reply::Maybe(v) => v.map(|b| decode(&b)).transpose(),
        other => Err(unexpected(&other)),
    }
}

/// A reply that must carry a value.
pub(super) fn required<T: DeserializeOwned>(reply: Reply) -> Result<T, ManagerError> {
    maybe(reply)?.ok_or_else(|| ManagerError::Refused("the server sent no value".into()))
}

pub(super) fn done(reply: Reply) -> Result<(), ManagerError> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

pub(super) fn count(reply: Reply) -> Result<usize, ManagerError> {
    match reply {
        Reply::Count(n) => Ok(n as usize),
        other => Err(unexpected(&other)),
    }
}

/// Milliseconds for a blocking server operation (`None`: no limit).
pub(super) fn millis(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

pub(super) fn flag(reply: Reply) -> Result<bool, ManagerError> {
    match reply {
        Reply::Flag(f) => Ok(f),
        other => Err(unexpected(&other)),
    }
}
