//! The benchmark cases, one module per group.

mod cpu;
mod logging;
mod machine;
mod pipes;
mod pools;
mod queues;
mod shared;
mod spawn;
mod sync;

pub(crate) use cpu::*;
pub(crate) use logging::*;
pub(crate) use machine::*;
pub(crate) use pipes::*;
pub(crate) use pools::*;
pub(crate) use queues::*;
pub(crate) use shared::*;
pub(crate) use spawn::*;
pub(crate) use sync::*;
