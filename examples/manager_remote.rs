//! A manager served on TCP with a key, used by a second program that knows only the address
//! and the key (Python's `BaseManager` pattern: `QueueManager(address, authkey).connect()`).
//!
//! `cargo run --example manager_remote` runs the server, then starts this same executable
//! again as the second program (`manager_remote client <address>`), and waits for it.

use std::process::Command;

use multiproc::Manager;

const KEY: &[u8] = b"example key";

fn client(address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::connect(address, KEY)?;
    let jobs = manager.dict_named::<String, u32>("jobs")?;
    let todo = jobs.get(&"todo".to_string())?.unwrap_or_default();
    println!(
        "client (pid {}): {todo} jobs to do; taking them",
        std::process::id()
    );
    jobs.insert(&"todo".to_string(), &0)?;
    jobs.insert(&"done".to_string(), &todo)?;
    manager
        .namespace_named("status")?
        .set("client", &"finished")?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, address] = args.as_slice()
        && mode == "client"
    {
        return client(address);
    }

    let manager = Manager::builder()
        .address("127.0.0.1:0")
        .authkey(KEY)
        .build()?;
    let address = manager.address().to_string();
    println!("server (pid {}): serving on {address}", std::process::id());
    let jobs = manager.dict_named::<String, u32>("jobs")?;
    jobs.insert(&"todo".to_string(), &42)?;

    let status = Command::new(std::env::current_exe()?)
        .args(["client", &address])
        .status()?;
    assert!(status.success(), "the client program failed");

    println!("server: jobs = {:?}", jobs.items()?);
    let said: Option<String> = manager.namespace_named("status")?.get("client")?;
    println!("server: the client says {said:?}");
    assert_eq!(jobs.get(&"done".to_string())?, Some(42));
    manager.shutdown()?;
    Ok(())
}
