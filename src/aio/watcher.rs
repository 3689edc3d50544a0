//! The process's futex watcher: one thread that sleeps on the futex words of every waiting
//! async call at once (`futex_waitv`) and wakes their tasks.
//!
//! A waiting call registers a [`Watch`]: a word, the value it announced on that word (the
//! primitive's own "someone sleeps here" protocol, see `sync/waiters.rs` and the queue's
//! `Signal`), an optional deadline and its task's `Waker`. The watcher fires (wakes and
//! forgets) an entry as soon as its word no longer holds that value or its deadline passes;
//! the task then looks at the primitive again and, if it still has to wait, registers anew.
//!
//! To the primitive the watcher is one more sleeper of this process: a change that follows
//! the primitive's protocol either is seen by the waiting call's re-check after its
//! announcement, or changes the word (the notifier clears the sleepers bit) and wakes every
//! sleeper on it, the watcher included. So the watcher adds no wake-up path of its own and
//! the primitives' wake code is unchanged (the `Lock`'s release gained one, see
//! `sync/lock.rs`).
//!
//! New registrations reach a sleeping watcher through `control`, a word of its own that is
//! always the first of the `futex_waitv` set: a registration bumps it and wakes it; the
//! watcher reads it before it reads the list, so a registration it did not see makes its
//! `futex_waitv` return at once. One `futex_waitv` takes 128 words; with more distinct
//! waits at once the watcher also looks every millisecond (the rest degrade to polling, no
//! wake-up is lost). The words' memory stays mapped while the watcher may read it: each
//! entry owns a handle on the primitive (`keep`), and the watcher holds the entries of the
//! set it sleeps on.
//!
//! A forked child has none of its parent's threads: [`watcher`] notices the different pid and
//! starts a fresh watcher (the parent's state is left alone, its mutex may have been held at
//! the fork).

use std::io;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use crate::sys::{self, memory};

/// One waiting call.
struct Entry {
    word: *const AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
    waker: Waker,
    /// Keeps the memory of `word` mapped (a handle on the primitive).
    _keep: Box<dyn Send + Sync>,
}

// SAFETY: `word` points into a shared mapping that `_keep` (a handle on the primitive that
// owns it) keeps mapped for as long as the entry exists; it is only ever accessed atomically,
// from any thread, like the primitive's own handles do.
unsafe impl Send for Entry {}
// SAFETY: as for `Send`: shared access is atomic loads only.
unsafe impl Sync for Entry {}

impl Entry {
    fn word(&self) -> &AtomicU32 {
        // SAFETY: see the `Send` impl: `_keep` keeps the word mapped while `self` lives.
        unsafe { &*self.word }
    }

    fn due(&self, now: Instant) -> bool {
        self.word().load(SeqCst) != self.expected || self.deadline.is_some_and(|d| now >= d)
    }
}

struct Watcher {
    pid: u32,
    entries: Mutex<Vec<Arc<Entry>>>,
    control: AtomicU32,
}

static WATCHER: AtomicPtr<Watcher> = AtomicPtr::new(std::ptr::null_mut());

/// This process's watcher, started on first use (and again in a forked child).
fn watcher() -> io::Result<&'static Watcher> {
    let pid = sys::getpid();
    loop {
        let current = WATCHER.load(SeqCst);
        // SAFETY: a published watcher is leaked (`Box::into_raw`, never freed), so the
        // pointer stays valid for the life of the process.
        if let Some(w) = unsafe { current.as_ref() }
            && w.pid == pid
        {
            return Ok(w);
        }
        let fresh = Box::into_raw(Box::new(Watcher {
            pid,
            entries: Mutex::new(Vec::new()),
            control: AtomicU32::new(0),
        }));
        if WATCHER
            .compare_exchange(current, fresh, SeqCst, SeqCst)
            .is_err()
        {
            // SAFETY: `fresh` was never published; this is its only pointer.
            drop(unsafe { Box::from_raw(fresh) });
            continue;
        }
        // SAFETY: just published and leaked, see above.
        let w: &'static Watcher = unsafe { &*fresh };
        if let Err(e) = crate::library_thread::spawn("multiproc-aio", move || run(w)) {
            // Nobody serves it: unpublish it (leaked; registrations that raced in fail later).
            let _ = WATCHER.compare_exchange(fresh, current, SeqCst, SeqCst);
            return Err(e);
        }
        return Ok(w);
    }
}

fn run(w: &'static Watcher) -> ! {
    let mut set: Vec<Arc<Entry>> = Vec::new();
    let mut fired: Vec<Arc<Entry>> = Vec::new();
    loop {
        let control = w.control.load(SeqCst);
        set.clear();
        {
            let mut entries = w.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            entries.retain(|e| {
                let due = e.due(now);
                if due {
                    fired.push(e.clone());
                }
                !due
            });
            set.extend(entries.iter().cloned());
        }
        if !fired.is_empty() {
            // Wake outside the lock: a waker may run the task's poll inline, which registers.
            for e in fired.drain(..) {
                e.waker.wake_by_ref();
            }
            continue;
        }
        let mut deadline = set.iter().filter_map(|e| e.deadline).min();
        if set.len() >= memory::FUTEX_WAITV_MAX {
            let poll = Instant::now() + Duration::from_millis(1);
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        let words: Vec<(&AtomicU32, u32)> = std::iter::once((&w.control, control))
            .chain(set.iter().map(|e| (e.word(), e.expected)))
            .take(memory::FUTEX_WAITV_MAX)
            .collect();
        memory::futex_waitv(&words, deadline);
    }
}

/// A registration with the watcher; dropping it withdraws it.
pub(crate) struct Watch {
    watcher: &'static Watcher,
    entry: Arc<Entry>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut entries = self
            .watcher
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = entries.iter().position(|e| Arc::ptr_eq(e, &self.entry)) {
            entries.swap_remove(i);
            drop(entries);
            // Withdrawn before it fired: let the watcher drop its copy (and the handle that
            // keeps the primitive mapped) now rather than at its next wake-up.
            self.watcher.control.fetch_add(1, SeqCst);
            memory::futex_wake(&self.watcher.control, 1);
        }
    }
}

/// The waiting state of one async call: at most one registration, replaced at each wait.
#[derive(Default)]
pub(crate) struct Sleeper {
    watch: Option<Watch>,
}

impl Sleeper {
    /// Wake the task of `cx` once `word` no longer holds `expected` (or at `deadline`).
    /// The caller has announced itself on the word and re-checked its condition after that.
    /// `keep` must keep the word's memory mapped (a clone of the primitive's handle).
    pub(crate) fn sleep(
        &mut self,
        cx: &Context<'_>,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
        keep: impl Send + Sync + 'static,
    ) -> io::Result<()> {
        self.watch = None;
        let w = watcher()?;
        let entry = Arc::new(Entry {
            word,
            expected,
            deadline,
            waker: cx.waker().clone(),
            _keep: Box::new(keep),
        });
        w.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry.clone());
        w.control.fetch_add(1, SeqCst);
        memory::futex_wake(&w.control, 1);
        self.watch = Some(Watch { watcher: w, entry });
        Ok(())
    }
}
