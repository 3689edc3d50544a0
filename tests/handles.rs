//! OS handles crossing process boundaries: `Connection`s and `Handle<T>`s as process
//! arguments, inside messages, and as return values, for each start method; and handles
//! refusing to be serialized outside multiproc.

#[macro_use]
mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use multiproc::{Connection, ConnectionError, Handle, ProcessBuilder, StartMethod, pipe};

fn builder(method: StartMethod) -> ProcessBuilder {
    ProcessBuilder::new().start_method(method)
}

/// A new, already unlinked, read-write file in the temporary directory.
fn temp_file() -> File {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "multiproc-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

fn read_all_from_start(file: &mut File) -> String {
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text
}

// ---------------------------------------------------------------------------------------
// Tasks run by the children of these tests.

/// Answers each string with its upper-case form until it receives "stop".
fn echo_upper(mut conn: Connection) -> u32 {
    let mut answered = 0;
    loop {
        let s: String = conn.recv().unwrap();
        if s == "stop" {
            return answered;
        }
        conn.send(&s.to_uppercase()).unwrap();
        answered += 1;
    }
}

/// Receives a connection on `control`, answers one string on it, and returns the string.
fn answer_on_received_connection(mut control: Connection) -> String {
    let mut data: Connection = control.recv().unwrap();
    let s: String = data.recv().unwrap();
    data.send(&s.to_uppercase()).unwrap();
    s
}

fn append_to_file(mut file: Handle<File>) -> u64 {
    file.write_all(b" world").unwrap();
    file.stream_position().unwrap()
}

/// Reads one line from the socket, writes it back in upper case, and returns this pid.
fn serve_one_line(stream: Handle<TcpStream>) -> u32 {
    let mut line = String::new();
    BufReader::new(&*stream).read_line(&mut line).unwrap();
    (&*stream)
        .write_all(line.to_uppercase().as_bytes())
        .unwrap();
    std::process::id()
}

/// Receives sockets on `control` and serves one line on each until end of file or a message
/// that is not a socket.
fn serve_received_sockets(mut control: Connection) -> u32 {
    let mut served = 0;
    while let Ok(Some(stream)) = control.recv::<Option<Handle<TcpStream>>>() {
        serve_one_line(stream);
        served += 1;
    }
    served
}

/// Returns one end of a new pipe after writing a message into it.
fn return_a_connection(_: ()) -> Connection {
    let (mut mine, theirs) = pipe().unwrap();
    mine.send(&format!("from pid {}", std::process::id()))
        .unwrap();
    theirs
}

fn return_a_file(text: String) -> Handle<File> {
    let mut file = temp_file();
    file.write_all(text.as_bytes()).unwrap();
    Handle::new(file)
}

// ---------------------------------------------------------------------------------------
// Per start method

fn connection_passed_as_an_argument_works_in_the_child(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = builder(method).start(echo_upper, there).unwrap();
    for word in ["hello", "handles"] {
        here.send(&word).unwrap();
        assert_eq!(here.recv::<String>().unwrap(), word.to_uppercase());
    }
    here.send(&"stop").unwrap();
    assert_eq!(child.join().unwrap(), 2);
}

fn connection_argument_is_closed_in_the_parent_once_moved(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = builder(method).start(echo_upper, there).unwrap();
    here.send(&"stop").unwrap();
    child.join().unwrap();
    // Only the child held the other end, and it has exited.
    assert!(matches!(here.recv::<String>(), Err(ConnectionError::Eof)));
}

fn connection_sent_over_a_connection_works_in_the_child(method: StartMethod) {
    let _g = common::guard();
    let (mut control, control_there) = pipe().unwrap();
    let (mut data, data_there) = pipe().unwrap();
    let child = builder(method)
        .start(answer_on_received_connection, control_there)
        .unwrap();
    control.send(&data_there).unwrap();
    drop(data_there);
    data.send(&"passed along").unwrap();
    assert_eq!(data.recv::<String>().unwrap(), "PASSED ALONG");
    assert_eq!(child.join().unwrap(), "passed along");
}

fn file_handle_passed_as_an_argument_works_in_the_child(method: StartMethod) {
    let _g = common::guard();
    let mut file = temp_file();
    file.write_all(b"hello").unwrap();
    let child = builder(method)
        .start(append_to_file, Handle::new(file.try_clone().unwrap()))
        .unwrap();
    // The child shares the open file, and so its offset.
    assert_eq!(child.join().unwrap(), 11);
    assert_eq!(read_all_from_start(&mut file), "hello world");
}

fn tcp_stream_handle_passed_as_an_argument_works_in_the_child(method: StartMethod) {
    let _g = common::guard();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let child = builder(method)
        .start(serve_one_line, Handle::new(accepted))
        .unwrap();
    client.write_all(b"over tcp\n").unwrap();
    // End of file comes when the child exits: this process kept no copy of the socket.
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "OVER TCP\n");
    assert_ne!(child.join().unwrap(), std::process::id());
}

fn child_can_return_a_connection(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(return_a_connection, ()).unwrap();
    let pid = child.pid();
    let mut conn = child.join().unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), format!("from pid {pid}"));
    assert!(matches!(conn.recv::<String>(), Err(ConnectionError::Eof)));
}

fn child_can_return_a_file_handle(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .start(return_a_file, "written by the child".to_string())
        .unwrap();
    let mut file = child.join().unwrap().into_inner();
    assert_eq!(read_all_from_start(&mut file), "written by the child");
}

fn tcp_stream_handle_sent_to_a_running_child_works(method: StartMethod) {
    let _g = common::guard();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut control, control_there) = pipe().unwrap();
    let child = builder(method)
        .start(serve_received_sockets, control_there)
        .unwrap();
    for word in ["first", "second"] {
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (accepted, _) = listener.accept().unwrap();
        control.send(&Some(Handle::new(accepted))).unwrap();
        client.write_all(format!("{word}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(&client).read_line(&mut reply).unwrap();
        assert_eq!(reply, format!("{}\n", word.to_uppercase()));
    }
    control.send(&None::<Handle<TcpStream>>).unwrap();
    assert_eq!(child.join().unwrap(), 2);
}

per_start_method!(
    connection_passed_as_an_argument_works_in_the_child,
    connection_argument_is_closed_in_the_parent_once_moved,
    connection_sent_over_a_connection_works_in_the_child,
    file_handle_passed_as_an_argument_works_in_the_child,
    tcp_stream_handle_passed_as_an_argument_works_in_the_child,
    child_can_return_a_connection,
    child_can_return_a_file_handle,
    tcp_stream_handle_sent_to_a_running_child_works,
);

// ---------------------------------------------------------------------------------------
// Within one process

#[test]
fn connection_sent_with_unread_messages_delivers_them_at_the_receiver() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let (mut courier_in, mut courier_out) = pipe().unwrap();
    a.send(&1u8).unwrap();
    a.send(&2u8).unwrap();
    // Reading the first message buffers the second one in `b`.
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    courier_in.send(&b).unwrap();
    drop(b);
    let mut b: Connection = courier_out.recv().unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 2);
    a.send(&3u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 3);
}

#[test]
fn connection_sent_with_unread_handles_delivers_them_at_the_receiver() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let (mut near, far) = pipe().unwrap();
    let (mut courier_in, mut courier_out) = pipe().unwrap();
    a.send(&1u8).unwrap();
    a.send(&far).unwrap();
    drop(far);
    // Reading the first message buffers the second one, handle included, in `b`.
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    courier_in.send(&b).unwrap();
    drop(b);
    let mut b: Connection = courier_out.recv().unwrap();
    let mut far: Connection = b.recv().unwrap();
    far.send(&"still attached").unwrap();
    assert_eq!(near.recv::<String>().unwrap(), "still attached");
}

#[test]
fn connection_keeps_its_direction_and_limit_when_sent() {
    let _g = common::guard();
    let (mut rx, mut tx) = multiproc::pipe_oneway().unwrap();
    rx.set_max_message_size(8);
    let (mut courier_in, mut courier_out) = pipe().unwrap();
    courier_in.send(&rx).unwrap();
    drop(rx);
    let mut rx: Connection = courier_out.recv().unwrap();
    assert!(rx.readable() && !rx.writable());
    assert_eq!(rx.max_message_size(), 8);
    tx.send_bytes(&[0; 9]).unwrap();
    assert!(matches!(
        rx.recv_bytes(),
        Err(ConnectionError::TooLarge { len: 9, limit: 8 })
    ));
}

#[test]
fn several_handles_in_one_message_all_arrive() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let (nears, fars): (Vec<Connection>, Vec<Connection>) = (0..5).map(|_| pipe().unwrap()).unzip();
    let file = temp_file();
    a.send(&(fars, Handle::new(file))).unwrap();
    let (fars, file): (Vec<Connection>, Handle<File>) = b.recv().unwrap();
    for (i, (mut near, mut far)) in nears.into_iter().zip(fars).enumerate() {
        far.send(&i).unwrap();
        assert_eq!(near.recv::<usize>().unwrap(), i);
    }
    (&*file).write_all(b"ok").unwrap();
}

#[test]
fn received_file_handle_shares_the_open_file() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let mut file = temp_file();
    a.send(&Handle::new(file.try_clone().unwrap())).unwrap();
    let mut received: Handle<File> = b.recv().unwrap();
    received.write_all(b"shared").unwrap();
    // Same open file description: same contents and same offset.
    assert_eq!(file.stream_position().unwrap(), 6);
    assert_eq!(read_all_from_start(&mut file), "shared");
}

#[test]
fn a_message_cannot_carry_more_than_253_handles() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let files: Vec<Handle<File>> = (0..254).map(|_| Handle::new(temp_file())).collect();
    assert!(matches!(a.send(&files), Err(ConnectionError::Malformed(_))));
    // Nothing was sent, and the connection still works.
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    a.send(&files[..253]).unwrap();
    assert_eq!(b.recv::<Vec<Handle<File>>>().unwrap().len(), 253);
}

#[test]
fn serializing_a_connection_outside_multiproc_is_an_error() {
    let _g = common::guard();
    let (a, _b) = pipe().unwrap();
    let err = serde_json::to_string(&a).unwrap_err();
    assert!(err.to_string().contains("multiproc"), "{err}");
}

#[test]
fn serializing_a_handle_outside_multiproc_is_an_error() {
    let _g = common::guard();
    let file = Handle::new(temp_file());
    assert!(serde_json::to_string(&file).is_err());
}

#[test]
fn deserializing_a_connection_outside_multiproc_is_an_error() {
    let _g = common::guard();
    let json =
        r#"{"fd":0,"readable":true,"writable":true,"max_message":8,"pending":[],"pending_fds":[]}"#;
    assert!(serde_json::from_str::<Connection>(json).is_err());
    assert!(serde_json::from_str::<Handle<File>>("0").is_err());
}

#[test]
fn handle_gives_access_to_the_wrapped_value() {
    let _g = common::guard();
    let mut handle = Handle::new(temp_file());
    handle.write_all(b"through deref").unwrap();
    let mut file = handle.into_inner();
    assert_eq!(read_all_from_start(&mut file), "through deref");
}
