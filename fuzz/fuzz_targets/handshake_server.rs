//! `Listener::accept`'s authentication handshake (`multiproc::fuzzing::server_handshake`)
//! against a scripted peer: arbitrary frames and bytes, correct or altered answers to the
//! library's challenge in every digest form, challenges of any shape (see
//! `common::HandshakeInput`). Checks: no panic or hang, typed errors, and never a success
//! without a correct answer to the library's challenge.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::run_handshake(data, true));
