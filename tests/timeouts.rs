//! A timeout too large for the clock (`Duration::MAX`, `u64::MAX` seconds) means "wait
//! forever": every timed call accepts it and behaves as its untimed form, never panicking on
//! an overflowing deadline.

mod common;

use std::time::Duration;

use multiproc::executor::{self, ReturnWhen};
use multiproc::listener::{Client, Listener};
use multiproc::{
    Barrier, Condition, Event, JoinableQueue, Lock, Manager, Pool, Process, ProcessPoolExecutor,
    Queue, RLock, Semaphore, pipe,
};

const HUGE: [Duration; 2] = [Duration::MAX, Duration::from_secs(u64::MAX)];

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn sync_primitives_take_huge_timeouts() {
    let _g = common::guard();
    for t in HUGE {
        let lock = Lock::new().unwrap();
        assert!(lock.acquire_timeout(t).unwrap().is_some());
        let rlock = RLock::new().unwrap();
        assert!(rlock.acquire_timeout(t).unwrap().is_some());
        let sem = Semaphore::new(1).unwrap();
        assert!(sem.acquire_timeout(t).is_some());
        let event = Event::new().unwrap();
        event.set();
        assert!(event.wait_timeout(t));
        let cond = Condition::new().unwrap();
        let Ok(Some(mut guard)) = cond.acquire_timeout(t) else {
            panic!("condition lock")
        };
        assert!(guard.wait_for(|| true, Some(t)));
        drop(guard);
        assert_eq!(Barrier::new(1).unwrap().wait_timeout(t).unwrap(), 0);
    }
}

#[test]
fn queues_take_huge_timeouts() {
    let _g = common::guard();
    for t in HUGE {
        let q: Queue<u32> = Queue::new().unwrap();
        assert!(q.put_timeout(7, t).unwrap());
        assert_eq!(q.get_timeout(t).unwrap(), Some(7));
        let jq: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        jq.put(1).unwrap();
        assert_eq!(jq.get_timeout(t).unwrap(), Some(1));
        jq.task_done().unwrap();
        assert!(jq.join_timeout(t));
    }
}

#[test]
fn connections_and_processes_take_huge_timeouts() {
    let _g = common::guard();
    for t in HUGE {
        let (mut a, mut b) = pipe().unwrap();
        a.send(&5u8).unwrap();
        assert!(b.poll(Some(t)).unwrap());
        assert_eq!(b.recv_timeout::<u8>(t).unwrap(), Some(5));
        b.send(&1u8).unwrap();
        assert_eq!(multiproc::connection::wait(&[&a], Some(t)).unwrap(), [0]);
        let child = Process::start(square, 3).unwrap();
        assert!(child.join_timeout(t).unwrap());
        assert_eq!(child.join().unwrap(), 9);
    }
}

#[test]
fn pools_and_executors_take_huge_timeouts() {
    let _g = common::guard();
    let pool = Pool::new(1).unwrap();
    let exec = ProcessPoolExecutor::new(1).unwrap();
    for t in HUGE {
        let r = pool.apply_async(square, 4).unwrap();
        assert!(r.wait_timeout(t));
        assert_eq!(r.get_timeout(t).unwrap(), 16);
        let f = exec.submit(square, 5).unwrap();
        assert!(f.wait_timeout(t));
        let done = executor::wait([&f], Some(t), ReturnWhen::AllCompleted);
        assert_eq!(done.done.len(), 1);
        assert_eq!(f.result_timeout(t).unwrap(), 25);
        let fs = vec![exec.submit(square, 6).unwrap()];
        let got: Vec<u64> = executor::as_completed(fs, Some(t))
            .map(|f| f.unwrap().result().unwrap())
            .collect();
        assert_eq!(got, [36]);
    }
}

#[test]
fn managers_and_listeners_take_huge_timeouts() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    for t in HUGE {
        let q = manager.queue::<u32>(0).unwrap();
        q.put(3).unwrap();
        assert_eq!(q.get_timeout(t).unwrap(), Some(3));
        let lock = manager.lock().unwrap();
        assert!(lock.acquire_timeout(t).unwrap().is_some());
        let event = manager.event().unwrap();
        event.set().unwrap();
        assert!(event.wait_timeout(t).unwrap());

        let mut listener = Listener::bind_auto(Some(b"key")).unwrap();
        listener.set_handshake_timeout(t);
        let address = listener.address().clone();
        let client = std::thread::spawn(move || Client::connect(&address, Some(b"key")));
        let mut server_side = listener.accept().unwrap();
        let mut client_side = client.join().unwrap().unwrap();
        client_side.send(&9u8).unwrap();
        assert_eq!(server_side.recv_timeout::<u8>(t).unwrap(), Some(9));
    }
    manager.shutdown().unwrap();
}
