use multiproc::*;
use std::time::{Duration, Instant};
fn inc((lock, v, n): (Lock, RawValue<u64>, u64)) {
    for _ in 0..n {
        let _g = lock.acquire().unwrap();
        v.set(v.get() + 1);
    }
}
fn inc_val((v, n): (Value<u64>, u64)) {
    for _ in 0..n {
        *v.lock() += 1;
    }
}
fn die_holding(lock: Lock) {
    let g = lock.acquire().unwrap();
    std::mem::forget(g);
    std::process::exit(0)
}
fn ping((a, b, n): (Event, Event, u32)) {
    for _ in 0..n {
        a.wait();
        a.clear();
        b.set();
    }
}
fn bw((b, n): (Barrier, u32)) {
    for _ in 0..n {
        b.wait().unwrap();
    }
}
fn main() {
    let lock = Lock::new().unwrap();
    let t = Instant::now();
    for _ in 0..1_000_000 {
        drop(lock.acquire().unwrap());
    }
    println!("uncontended: {:?}/op", t.elapsed() / 1_000_000);
    let v = RawValue::new(0u64).unwrap();
    let t = Instant::now();
    let ps: Vec<_> = (0..2)
        .map(|_| Process::start(inc, (lock.clone(), v.clone(), 100_000)).unwrap())
        .collect();
    for p in ps {
        p.join().unwrap();
    }
    println!("contended counter: {} in {:?}", v.get(), t.elapsed());
    let val = Value::new(0u64).unwrap();
    let t = Instant::now();
    let ps: Vec<_> = (0..2)
        .map(|m| {
            Builder::new()
                .start_method(if m == 0 {
                    StartMethod::Spawn
                } else {
                    StartMethod::Fork
                })
                .start(inc_val, (val.clone(), 100_000))
                .unwrap()
        })
        .collect();
    for p in ps {
        p.join().unwrap();
    }
    println!("value counter: {} in {:?}", val.get(), t.elapsed());
    let l2 = Lock::new().unwrap();
    let p = Process::start(die_holding, l2.clone()).unwrap();
    let _ = p.join();
    let t = Instant::now();
    match l2.acquire_timeout(Duration::from_secs(2)) {
        Err(AcquireError::OwnerDied(_g)) => println!("owner died detected in {:?}", t.elapsed()),
        other => println!("unexpected {:?}", other.map(|_| ())),
    }
    let (a, b) = (Event::new().unwrap(), Event::new().unwrap());
    let n = 20000;
    let p = Process::start(ping, (a.clone(), b.clone(), n)).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        a.set();
        b.wait();
        b.clear();
    }
    println!("event pingpong: {:?}/rt", t.elapsed() / n);
    p.join().unwrap();
    let bar = Barrier::new(2).unwrap();
    let p = Process::start(bw, (bar.clone(), n)).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        bar.wait().unwrap();
    }
    println!("barrier: {:?}/cycle", t.elapsed() / n);
    p.join().unwrap();
    let shm = SharedMemory::create(1 << 20).unwrap();
    println!("shm {}", shm.name());
    let s = Semaphore::new(2).unwrap();
    let g1 = s.acquire();
    let _g2 = s.acquire();
    assert!(s.acquire_timeout(Duration::from_millis(20)).is_none());
    drop(g1);
    assert!(s.try_acquire().is_some());
    let bs = BoundedSemaphore::new(1).unwrap();
    assert!(bs.release().is_err());
}
