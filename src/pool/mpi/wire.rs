//! The messages between rank 0's hub and the worker ranks, one MPI tag per kind.
//!
//! Orders and reports travel as the very bytes the local engine puts into its task ring and
//! reads from its result ring (`pool::worker::Order` + items, `Report` + results), so a
//! worker rank runs a chunk exactly as a local worker does and the hub forwards without
//! decoding more than an order's id. Between two processes MPI delivers in order, and both
//! sides receive with any tag, so a rank sees its commands in the order they were sent.

use serde::{Deserialize, Serialize};

use crate::panic_report::PanicReport;
use crate::pool::task::InitCode;

/// Worker → hub, once after `MPI_Init`: [`Hello`].
pub(crate) const TAG_HELLO: i32 = 1;
/// Hub → worker: a [`Command`].
pub(crate) const TAG_COMMAND: i32 = 2;
/// Hub → worker: an order as the task ring holds it.
pub(crate) const TAG_ORDER: i32 = 3;
/// Worker → hub: a report for the result ring (ends the oldest order sent to the worker).
pub(crate) const TAG_DONE: i32 = 4;
/// Worker → hub: how an [`Command::Attach`]'s initializer went, an [`InitReply`].
pub(crate) const TAG_INIT: i32 = 5;
/// Hub → worker: several orders in one message, each as the task ring holds it, run in turn
/// and answered one `TAG_DONE` each (see [`encode_orders`]).
pub(crate) const TAG_ORDERS: i32 = 6;

/// Several orders as one message: each as a length (`u32`, little-endian) and its bytes.
pub(crate) fn encode_orders(orders: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(orders.iter().map(|o| o.len() + 4).sum());
    for order in orders {
        out.extend_from_slice(&(order.len() as u32).to_le_bytes());
        out.extend_from_slice(order);
    }
    out
}

/// The orders of a [`TAG_ORDERS`] message (a malformed tail is dropped).
pub(crate) fn decode_orders(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut orders = Vec::new();
    while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some((order, rest)) = rest.split_at_checked(len) else {
            break;
        };
        orders.push(order);
        bytes = rest;
    }
    orders
}

/// Who a worker rank is, for the build check and for names in errors.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// `code::fingerprint()`: equal only in the same build.
    pub fingerprint: i64,
    /// The build-id in hex, for the error message.
    pub build_id: String,
    pub pid: u32,
    pub host: String,
}

/// What the hub tells a worker rank besides orders.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Same build: serve.
    Welcome,
    /// Another build than rank 0's: exit.
    Mismatch { expected: String },
    /// A new pool: the worker's index in it (for its reports), the initializer to run first,
    /// and whether the pool has a task timeout.
    Attach {
        epoch: u64,
        index: u32,
        init: Option<(InitCode, serde_bytes::ByteBuf)>,
    },
    /// The job ends: finalize MPI and exit.
    Shutdown,
}

/// A worker's answer to [`Command::Attach`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitReply {
    pub epoch: u64,
    /// `Err(None)`: the initializer could not even run (another build, undecodable argument).
    pub result: Result<(), Option<PanicReport>>,
}

/// Encode one of these messages (our own types into a `Vec`: cannot fail).
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_default()
}

/// The build-id of this executable in hex (its fingerprint when it has none).
pub(crate) fn build_id() -> String {
    match &crate::sys::image::main_image().build_id {
        Some(id) => id.iter().map(|b| format!("{b:02x}")).collect(),
        None => format!("fingerprint {:x}", crate::code::fingerprint()),
    }
}
