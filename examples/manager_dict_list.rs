//! The seeds' Manager example: a dict and a list owned by a manager's server process,
//! changed by several worker processes, read back by the parent.
//!
//! `cargo run --example manager_dict_list`

use multiproc::manager::{DictProxy, ListProxy};
use multiproc::{Manager, Process};

/// Python's `f(d, l)`: set a few entries, and add this worker's number to the list.
fn f((n, d, l): (u32, DictProxy<String, String>, ListProxy<u32>)) {
    d.insert(
        &format!("worker-{n}"),
        &format!("pid {}", std::process::id()),
    )
    .expect("the manager is there");
    d.insert(&"last".to_string(), &n.to_string())
        .expect("the manager is there");
    l.push(&n).expect("the manager is there");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::start()?;
    println!(
        "manager server: pid {:?} at {}",
        manager.server_pid(),
        manager.address()
    );
    let d = manager.dict::<String, String>()?;
    let l = manager.list::<u32>()?;
    l.extend(0..3)?;

    let workers: Vec<_> = (10..14)
        .map(|n| Process::start(f, (n, d.clone(), l.clone())))
        .collect::<Result<_, _>>()?;
    for w in workers {
        w.join()?;
    }

    for (key, value) in d.items()? {
        println!("d[{key:?}] = {value:?}");
    }
    let mut items = l.items()?;
    println!("l = {items:?}");
    items.sort_unstable();
    assert_eq!(items, [0, 1, 2, 10, 11, 12, 13]);
    assert_eq!(d.len()?, 5);
    manager.shutdown()?;
    Ok(())
}
