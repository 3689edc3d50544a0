use multiproc::*;
use std::time::{Duration, Instant};
fn square(x: u64) -> u64 { x * x }
fn boom(_: ()) -> u8 { panic!("kaboom") }
fn echo(mut c: Connection) { while let Ok(v) = c.recv::<String>() { c.send(&v).unwrap(); } }
fn main() {
    for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
        let t = Instant::now();
        let p = Builder::new().start_method(m).start(square, 9).unwrap();
        println!("{m}: {} in {:?}", p.join().unwrap(), t.elapsed());
        let e = Builder::new().start_method(m).start(boom, ()).unwrap().join().unwrap_err();
        println!("{m}: err {e}");
        let (mut a, b) = pipe().unwrap();
        let p = if m == StartMethod::Fork { let mut a2 = Some(&mut a); let _ = &mut a2; Builder::new().start_method(m).start(echo, b).unwrap() } else { Builder::new().start_method(m).start(echo, b).unwrap() };
        a.send(&"hi".to_string()).unwrap();
        println!("{m}: echo {}", a.recv::<String>().unwrap());
        drop(a);
        if m == StartMethod::Fork { p.terminate().unwrap(); let _ = p.join(); } else { p.join().unwrap(); }
        let t = Instant::now();
        let n = 200;
        for _ in 0..n { Builder::new().start_method(m).start(square, 2).unwrap().join().unwrap(); }
        println!("{m}: {:?} per spawn+join", t.elapsed() / n);
    }
    let p = Builder::new().fork(|| std::thread::sleep(Duration::from_secs(10))).unwrap();
    p.kill().unwrap();
    println!("kill: {:?}", p.join().unwrap_err());
}
