//! Every public error type can leave a function through `?` into `Box<dyn Error>` or any
//! error type that requires `Send + Sync + 'static` (anyhow, eyre): none borrows, none holds
//! a guard or a thread-bound value.

use std::error::Error;

fn is_portable_error<E: Error + Send + Sync + 'static>() {}

#[test]
fn every_public_error_is_send_sync_and_static() {
    is_portable_error::<multiproc::ProcessError>();
    is_portable_error::<multiproc::LimitError>();
    is_portable_error::<multiproc::ConnectionError>();
    is_portable_error::<multiproc::CodecError>();
    is_portable_error::<multiproc::QueueError>();
    is_portable_error::<multiproc::SyncError>();
    is_portable_error::<multiproc::PoolError>();
    is_portable_error::<multiproc::manager::ManagerError>();
    is_portable_error::<multiproc::logging::LoggingError>();
}

/// The README's way to take a lock, in a function returning `Box<dyn Error>`.
fn critical_section(lock: &multiproc::Lock) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let guard = lock.acquire()?;
    assert!(!guard.owner_died());
    Ok(7)
}

#[test]
fn a_lock_is_taken_with_question_mark_in_a_boxed_error_function() {
    let lock = multiproc::Lock::new().expect("a lock");
    assert_eq!(critical_section(&lock).expect("the section"), 7);
}
