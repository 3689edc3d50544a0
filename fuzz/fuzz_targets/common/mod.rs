//! Shared by the fuzz targets: a peer that writes fuzzer-chosen bytes (and descriptors) into
//! a socket whose other end is a `multiproc::Connection`, and the check that an error a peer
//! can cause is one of the typed protocol errors.

#![allow(dead_code)]

use std::io::{ErrorKind, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use multiproc::{Connection, ConnectionError};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

/// A socket pair: `conn` is the library's end, `peer` the fuzzer's.
pub struct Wire {
    pub conn: Connection,
    pub peer: UnixStream,
}

impl Wire {
    pub fn new() -> Wire {
        let (a, b) = UnixStream::pair().expect("socketpair (descriptor leak?)");
        // The peer never blocks: if the kernel's buffer is full, the rest of the input is
        // dropped (deterministic for a given input on a given kernel).
        b.set_nonblocking(true).expect("nonblocking");
        Wire {
            conn: Connection::new(OwnedFd::from(a)),
            peer: b,
        }
    }

    /// Write `bytes` as one `sendmsg`, with `fds` descriptors (each a fresh `dead_socket`)
    /// attached. Returns false once the socket buffer is full.
    pub fn send(&self, bytes: &[u8], fds: usize) -> bool {
        let owned: Vec<OwnedFd> = (0..fds).map(|_| dead_socket()).collect();
        let borrowed: Vec<_> = owned.iter().map(|f| f.as_fd()).collect();
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !borrowed.is_empty() {
            assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
        }
        let mut done = 0;
        // A descriptor-carrying write with no byte would carry nothing: send at least one.
        while done < bytes.len() {
            let iov = [IoSlice::new(&bytes[done..])];
            let flags = SendFlags::NOSIGNAL;
            let r = if done == 0 {
                sendmsg(&self.peer, &iov, &mut control, flags)
            } else {
                sendmsg(&self.peer, &iov, &mut SendAncillaryBuffer::default(), flags)
            };
            match r {
                Ok(n) => done += n,
                Err(e) if std::io::Error::from(e).kind() == ErrorKind::WouldBlock => return false,
                Err(e) => panic!("peer sendmsg: {e}"),
            }
        }
        true
    }

    /// Write segments described by `data`: each is `[ctrl][len lo][len hi][bytes]`, with
    /// `ctrl & 3` descriptors attached; at most `max_segments`, the last takes the rest.
    pub fn send_segments(&self, mut data: &[u8], max_segments: usize) {
        let mut n = 0;
        while !data.is_empty() {
            n += 1;
            let ctrl = data[0];
            let len = if n == max_segments || data.len() < 3 {
                usize::MAX
            } else {
                u16::from_le_bytes([data[1], data[2]]) as usize
            };
            let start = if data.len() < 3 { data.len() } else { 3 };
            let body = &data[start..];
            let take = len.min(body.len());
            if !self.send(&body[..take], (ctrl & 3) as usize) {
                return;
            }
            data = &body[take..];
        }
    }

    /// The peer sends nothing more: the library sees end of file once it has read everything.
    pub fn finish(&self) {
        let _ = self.peer.shutdown(std::net::Shutdown::Write);
    }
}

/// A descriptor to pass: one end of a socket pair whose other end is closed (reads give end
/// of file at once, writes fail), so nothing a decoded handle does can block.
pub fn dead_socket() -> OwnedFd {
    let (a, _b) = UnixStream::pair().expect("socketpair (descriptor leak?)");
    OwnedFd::from(a)
}

/// Panic unless `e` is an error a misbehaving peer may legitimately cause.
pub fn check_peer_error(e: &ConnectionError) {
    match e {
        ConnectionError::Eof
        | ConnectionError::PeerClosed
        | ConnectionError::Truncated { .. }
        | ConnectionError::TooLarge { .. }
        | ConnectionError::Malformed(_)
        | ConnectionError::Codec(_)
        | ConnectionError::BufferTooShort(_)
        | ConnectionError::Authentication(_)
        // A connection the peer sent may be a one-way end.
        | ConnectionError::WrongDirection(_)
        | ConnectionError::Broken => {}
        other => panic!("untyped error from peer input: {other:?}"),
    }
}

// ----- handshake peer ------------------------------------------------------------------------

use hmac::{Hmac, KeyInit, Mac};

/// Python's framing: a 4-byte big-endian length, then the body.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn hmac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The handshake input: `[key length][key][challenge: 40][script...]`, the script being
/// peer actions (`PeerScript::run`).
pub struct HandshakeInput<'a> {
    pub key: &'a [u8],
    pub challenge: [u8; multiproc::fuzzing::CHALLENGE_LENGTH],
    pub script: &'a [u8],
}

impl<'a> HandshakeInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<HandshakeInput<'a>> {
        let (&klen, rest) = data.split_first()?;
        let klen = (klen % 64) as usize;
        let key = rest.get(..klen)?;
        let challenge = rest.get(klen..klen + 40)?.try_into().ok()?;
        Some(HandshakeInput {
            key,
            challenge,
            script: &rest[klen + 40..],
        })
    }

    /// The message the library challenges with (`{sha256}` + the random part).
    pub fn library_message(&self) -> Vec<u8> {
        [&b"{sha256}"[..], &self.challenge].concat()
    }

    /// Turn the script into the peer's bytes. Returns them (as `(bytes, descriptors)` writes)
    /// and whether they contain an unaltered, correct answer to the library's challenge
    /// (without one the library must never accept the peer).
    pub fn peer_writes(&self) -> (Vec<(Vec<u8>, usize)>, bool) {
        let mut writes = Vec::new();
        let mut answered = false;
        let mut s = self.script;
        let byte = |s: &mut &[u8]| -> Option<u8> {
            let (&b, rest) = s.split_first()?;
            *s = rest;
            Some(b)
        };
        let bytes = |s: &mut &'a [u8], n: usize| -> &'a [u8] {
            let n = n.min(s.len());
            let (head, rest) = s.split_at(n);
            *s = rest;
            head
        };
        while let Some(op) = byte(&mut s) {
            let arg = op >> 3;
            match op & 7 {
                // Raw bytes, any framing, `arg & 3` descriptors attached.
                0 => {
                    let n = byte(&mut s).unwrap_or(0) as usize;
                    writes.push((bytes(&mut s, n).to_vec(), (arg & 3) as usize));
                }
                // The answer to the library's challenge, in one of the forms, maybe altered.
                1 => {
                    let message = self.library_message();
                    let mut answer = match arg & 3 {
                        0 => [&b"{sha256}"[..], &hmac::<Hmac<sha2::Sha256>>(self.key, &message)]
                            .concat(),
                        1 => [&b"{md5}"[..], &hmac::<Hmac<md5::Md5>>(self.key, &message)].concat(),
                        2 => [&b"{sha384}"[..], &hmac::<Hmac<sha2::Sha384>>(self.key, &message)]
                            .concat(),
                        _ => hmac::<Hmac<md5::Md5>>(self.key, &message),
                    };
                    if arg & 4 != 0 {
                        let at = byte(&mut s).unwrap_or(0) as usize;
                        let flip = byte(&mut s).unwrap_or(1) | 1;
                        let at = at % answer.len();
                        answer[at] ^= flip;
                    } else if arg & 8 != 0 {
                        let keep = byte(&mut s).unwrap_or(0) as usize % answer.len();
                        answer.truncate(keep);
                    } else {
                        answered = true;
                    }
                    writes.push((frame(&answer), 0));
                }
                // A frame with an arbitrary body.
                2 => {
                    let n = byte(&mut s).unwrap_or(0) as usize;
                    writes.push((frame(bytes(&mut s, n)), 0));
                }
                // A challenge to the library, with an arbitrary message.
                3 => {
                    let n = byte(&mut s).unwrap_or(0) as usize;
                    let body = [&b"#CHALLENGE#"[..], bytes(&mut s, n)].concat();
                    writes.push((frame(&body), 0));
                }
                // A `{digest}`-prefixed challenge to the library.
                4 => {
                    let name: &[u8] = match arg & 3 {
                        0 => b"{sha256}",
                        1 => b"{md5}",
                        2 => b"{sha384}",
                        _ => b"{sha1}",
                    };
                    let n = byte(&mut s).unwrap_or(0) as usize;
                    let body = [&b"#CHALLENGE#"[..], name, bytes(&mut s, n)].concat();
                    writes.push((frame(&body), 0));
                }
                5 => writes.push((frame(b"#WELCOME#"), 0)),
                6 => writes.push((frame(b"#FAILURE#"), 0)),
                // A header announcing a length (maybe huge or negative), nothing after it.
                _ => {
                    let len = bytes(&mut s, 4);
                    let mut header = [0xffu8; 4];
                    header[..len.len()].copy_from_slice(len);
                    writes.push((header.to_vec(), 0));
                }
            }
        }
        (writes, answered)
    }
}

/// Frames the library wrote to the peer (for checks), read without blocking.
pub fn library_frames(peer: &UnixStream) -> Vec<Vec<u8>> {
    use std::io::Read;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let mut peer = peer;
    loop {
        match peer.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    let mut frames = Vec::new();
    let mut rest = &all[..];
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let Some(body) = rest.get(4..4 + len) else {
            panic!("the library wrote a truncated frame");
        };
        frames.push(body.to_vec());
        rest = &rest[4 + len..];
    }
    assert!(rest.is_empty(), "the library wrote a partial header");
    frames
}

/// Run one side of the handshake against the scripted peer and check the outcome.
pub fn run_handshake(data: &[u8], server: bool) {
    let Some(input) = HandshakeInput::parse(data) else {
        return;
    };
    let (writes, answered) = input.peer_writes();
    let wire = Wire::new();
    for (bytes, fds) in &writes {
        if bytes.is_empty() || !wire.send(bytes, *fds) {
            if bytes.is_empty() {
                continue;
            }
            break;
        }
    }
    wire.finish();
    let mut conn = wire.conn;
    let timeout = std::time::Duration::from_secs(5);
    let result = if server {
        multiproc::fuzzing::server_handshake(&mut conn, input.key, &input.challenge, timeout)
    } else {
        multiproc::fuzzing::client_handshake(&mut conn, input.key, &input.challenge, timeout)
    };
    if std::env::var_os("MULTIPROC_FUZZ_DEBUG").is_some() {
        eprintln!("handshake (server: {server}): {result:?}");
    }
    match &result {
        Ok(()) => assert!(
            answered,
            "handshake accepted a peer that never answered the challenge correctly"
        ),
        Err(e) => check_peer_error(e),
    }
    // What the library said must be well-formed frames, the first (server) being its
    // challenge; on success it welcomed the peer.
    let frames = library_frames(&wire.peer);
    let challenge = [&b"#CHALLENGE#"[..], &input.library_message()].concat();
    if server {
        assert_eq!(frames.first(), Some(&challenge), "server's first frame");
    }
    if result.is_ok() {
        assert!(frames.iter().any(|f| f == b"#WELCOME#"), "success without #WELCOME#");
        assert!(frames.contains(&challenge));
    }
    for f in &frames {
        assert!(f.len() <= 256, "handshake frame of {} bytes", f.len());
    }
}
