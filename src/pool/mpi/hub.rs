//! Rank 0's side: one thread (`multiproc-mpi`) that owns MPI in this process and carries a
//! pool engine's orders to the worker ranks and their reports back.
//!
//! The thread initializes MPI (`MPI_THREAD_FUNNELED`: no other thread of the process ever
//! calls MPI), checks that every worker runs this build, and then serves one engine at a
//! time (an *attachment*, numbered by an epoch): it takes orders from the engine's task
//! ring, sends each to the least busy rank (at most [`DEPTH`] per rank, so a rank has its
//! next chunk at hand when it finishes one, or [`QUICK_DEPTH`] for a rank whose orders take
//! less than [`QUICK`]; a large order only to an idle rank, see [`EAGER`]), and puts every
//! report into the engine's
//! result ring untouched. The engine's collector then does all the rest, exactly as for
//! local workers.
//!
//! Waiting: with no order out, the thread sleeps on the task ring's futex (no core used,
//! woken by the next order or a command). With orders out it polls MPI without blocking
//! and yields the CPU between polls: MPI offers no descriptor to sleep on, and sleeping
//! between polls is what makes `mpi4py` slow.
//!
//! A rank's orders are answered in the order they were sent, so the oldest order of a rank
//! is the one it runs: the hub writes it into that rank's `WorkerStatus` (the engine's
//! watcher reads its start for the task timeout and `kill` finds it there). When the engine
//! gives a rank up ([`Remote::lost`]), its other orders go back to the engine and the rank
//! is never used again; a late answer from it is dropped. Answers to a detached engine's
//! orders are dropped too, so the next engine starts clean.
//!
//! At exit (an `atexit` handler registered before `main`), the hub tells every rank to shut
//! down and finalizes MPI, so `mpirun` sees a clean end. A program that never made a pool
//! still initializes MPI then, to release the workers waiting for it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ::mpi::environment::Threading;
use ::mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use ::mpi::topology::{Communicator, Rank};

use super::error::MpiError;
use super::launch::{self, Role};
use super::ranks::{Worker, meet, shutdown};
use super::wire::{self, Command, InitReply};
use crate::pool::PoolError;
use crate::pool::engine::{REMOTE_GENERATION, Remote, RemoteLink};
use crate::pool::worker::{Order, Report};
use crate::queue::ring::Ring;

/// Most orders out to one rank at once.
pub(super) const DEPTH: usize = 2;

/// Most orders out to a rank whose last order took less than [`QUICK`]: tiny tasks (a chunk
/// size of 1) are bound by the round trip between ranks, so more of them travel at once.
/// Slow orders stay at [`DEPTH`], so that a rank that finishes early does not wait while
/// work sits queued at a busy one.
pub(super) const QUICK_DEPTH: usize = 32;

/// See [`QUICK_DEPTH`]: from when an order became its rank's oldest to its answer.
pub(super) const QUICK: Duration = Duration::from_micros(100);

/// Orders up to this size are sent to a rank that is busy: MPI libraries send messages this
/// small *eagerly* (Open MPI's shared-memory limit is 4 KiB, TCP's 64 KiB), so the send
/// returns at once. A larger order goes only to an idle rank, which is waiting to receive:
/// a blocking send to a rank busy with a long chunk would stall the hub, and deadlock
/// with that rank's blocking send of its large result.
const EAGER: usize = 2048;

/// The longest the hub sleeps on an attached engine's ring without looking at requests.
const IDLE_TICK: Duration = Duration::from_millis(20);

/// A byte that is no `Order`: put into an attached engine's task ring to wake the hub.
const WAKE: u8 = 0xff;

/// What the hub is asked to do.
enum Request {
    Attach(
        RemoteLink,
        mpsc::Sender<Result<Vec<(String, u32)>, PoolError>>,
    ),
    Detach,
    Lost(usize),
    Shutdown(mpsc::Sender<()>),
}

/// The handle other threads talk to the hub through.
pub(crate) struct Hub {
    requests: Mutex<Requests>,
    arrived: Condvar,
    /// Set while `requests.queue` is not empty (checked by the polling loop without the lock).
    pending: AtomicBool,
    /// How many worker ranks passed the build check.
    workers: usize,
    /// The current attachment's epoch (0: none).
    epoch: AtomicU64,
}

struct Requests {
    queue: VecDeque<Request>,
    /// The attached engine's task ring, where the hub may be asleep.
    ring: Option<Ring>,
    /// An engine is attached (or attaching).
    busy: bool,
    /// The hub thread has finalized MPI.
    finished: bool,
}

/// How the hub gets its workers.
#[derive(Clone, Copy)]
pub(crate) enum Workers {
    /// The other ranks of the launched job.
    World,
    /// `n` processes spawned with `MPI_Comm_spawn`.
    Spawn(i32),
}

static HUB: OnceLock<Result<Arc<Hub>, MpiError>> = OnceLock::new();

/// The hub, started (MPI initialized, workers checked) on first need with `workers`.
pub(crate) fn hub(workers: Workers) -> Result<Arc<Hub>, MpiError> {
    HUB.get_or_init(|| start(workers)).clone()
}

/// The hub if it has started.
pub(crate) fn started() -> Option<Result<Arc<Hub>, MpiError>> {
    HUB.get().cloned()
}

fn start(workers: Workers) -> Result<Arc<Hub>, MpiError> {
    let (ready, started) = mpsc::channel();
    let thread = crate::library_thread::spawn("multiproc-mpi", move || serve(workers, ready));
    if let Err(e) = thread {
        return Err(MpiError::Init(format!(
            "could not start the MPI thread: {e}"
        )));
    }
    started
        .recv()
        .unwrap_or_else(|_| Err(MpiError::Init("the MPI thread ended at start-up".into())))
}

/// The `atexit` handler of rank 0: shut the workers down and finalize MPI.
pub(crate) extern "C" fn at_exit() {
    let hub = match HUB.get() {
        Some(Ok(hub)) => hub.clone(),
        Some(Err(_)) => return,
        // No pool ever ran: the workers still wait for rank 0 (in `MPI_Init` or for their
        // first command).
        None if matches!(launch::role(), Role::Main { .. }) => match hub(Workers::World) {
            Ok(hub) => hub,
            Err(_) => return,
        },
        None => return,
    };
    let (done, finished) = mpsc::channel();
    hub.request(Request::Shutdown(done));
    let _ = finished.recv();
}

impl Hub {
    /// How many worker ranks serve pools.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    fn lock(&self) -> MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, request: Request) {
        let mut requests = self.lock();
        if requests.finished {
            return;
        }
        requests.queue.push_back(request);
        self.pending.store(true, SeqCst);
        // The hub may sleep on the attached engine's ring or on the condition variable.
        if let Some(ring) = &requests.ring {
            let _ = ring.put(&[WAKE], Some(Instant::now()));
        }
        self.arrived.notify_all();
    }

    fn take_requests(&self) -> VecDeque<Request> {
        let mut requests = self.lock();
        self.pending.store(false, SeqCst);
        std::mem::take(&mut requests.queue)
    }
}

/// The hub as one engine's [`Remote`] transport.
pub(crate) struct Transport {
    hub: Arc<Hub>,
    /// This engine holds the ranks (only then may it detach them).
    attached: AtomicBool,
}

impl Transport {
    pub(crate) fn new(hub: Arc<Hub>) -> Transport {
        Transport {
            hub,
            attached: AtomicBool::new(false),
        }
    }
}

impl Remote for Transport {
    fn attach(&self, link: RemoteLink) -> Result<Vec<(String, u32)>, PoolError> {
        {
            let mut requests = self.hub.lock();
            if requests.busy {
                return Err(PoolError::Mpi(MpiError::Busy));
            }
            requests.busy = true;
            requests.ring = Some(link.tasks.clone());
        }
        self.attached.store(true, SeqCst);
        let (reply, answer) = mpsc::channel();
        self.hub.request(Request::Attach(link, reply));
        let answer = answer.recv().unwrap_or_else(|_| {
            Err(PoolError::Mpi(MpiError::Init(
                "the MPI thread ended".into(),
            )))
        });
        if answer.is_err() {
            self.detach();
        }
        answer
    }

    fn lost(&self, w: usize) {
        self.hub.request(Request::Lost(w));
    }

    fn detach(&self) {
        if !self.attached.swap(false, SeqCst) {
            return;
        }
        self.hub.request(Request::Detach);
        let mut requests = self.hub.lock();
        requests.busy = false;
        requests.ring = None;
    }
}

/// The engine being served.
struct Attachment {
    epoch: u64,
    link: RemoteLink,
    /// The attachment's worker `i` is `workers[ranks[i]]`.
    ranks: Vec<usize>,
    /// Which of them took a `Stop` (or were lost): no more orders.
    done: Vec<bool>,
}

/// The hub thread: initialize MPI, meet the workers, serve, finalize.
fn serve(workers: Workers, ready: mpsc::Sender<Result<Arc<Hub>, MpiError>>) {
    let Some((universe, _)) = ::mpi::initialize_with_threading(Threading::Funneled) else {
        let _ = ready.send(Err(MpiError::Init(
            "MPI was already initialized in this process".into(),
        )));
        return;
    };
    let world = universe.world();
    let done = match workers {
        Workers::World => run(&world, (1..world.size()).collect(), ready),
        Workers::Spawn(n) => match std::env::current_exe() {
            Err(e) => {
                let _ = ready.send(Err(MpiError::Spawn(format!(
                    "could not find this program's executable: {e}"
                ))));
                None
            }
            Ok(exe) => {
                let mut command = std::process::Command::new(exe);
                command.arg(launch::SPAWNED_ARG);
                let root = world.process_at_rank(0);
                match ::mpi::collective::Root::spawn(&root, &command, n) {
                    Ok(children) => run(&children, (0..n).collect(), ready),
                    Err(e) => {
                        let _ = ready.send(Err(MpiError::Spawn(e.to_string())));
                        None
                    }
                }
            }
        },
    };
    // Finalize before answering: the process may end as soon as it has the answer.
    drop(universe);
    if let Some(done) = done {
        done();
    }
}

/// Serve the workers `ranks` of `comm` (the world, or the spawned group); what to do once
/// MPI is finalized (answer the exit handler, or report a build mismatch).
fn run<C: Communicator>(
    comm: &C,
    ranks: Vec<Rank>,
    ready: mpsc::Sender<Result<Arc<Hub>, MpiError>>,
) -> Option<AfterFinalize> {
    let (mut workers, mismatch) = meet(comm, &ranks);
    let hub = Arc::new(Hub {
        requests: Mutex::new(Requests {
            queue: VecDeque::new(),
            ring: None,
            busy: false,
            finished: false,
        }),
        arrived: Condvar::new(),
        pending: AtomicBool::new(false),
        workers: workers.len(),
        epoch: AtomicU64::new(0),
    });
    if let Some(error) = mismatch {
        shutdown(comm, &workers);
        hub.lock().finished = true;
        // Answered once MPI is finalized: the program may end as soon as it knows.
        return Some(Box::new(move || {
            let _ = ready.send(Err(error));
        }));
    }
    let _ = ready.send(Ok(hub.clone()));
    let mut serving = Serving {
        comm,
        hub: &hub,
        attached: None,
        next_epoch: 1,
        held: None,
        batch: Vec::new(),
    };
    let done = serving.serve(&mut workers);
    shutdown(comm, &workers);
    hub.lock().finished = true;
    done.map(|done| {
        Box::new(move || {
            let _ = done.send(());
        }) as AfterFinalize
    })
}

/// What the hub thread does once MPI is finalized: tell whoever waits for it.
type AfterFinalize = Box<dyn FnOnce() + Send>;

struct Serving<'a, C> {
    comm: &'a C,
    hub: &'a Hub,
    attached: Option<Attachment>,
    next_epoch: u64,
    /// A large order taken from the ring, waiting for an idle rank.
    held: Option<Vec<u8>>,
    /// Orders dispatched and not sent yet: `(worker, order)`, sent by [`Serving::flush`] as
    /// one message per rank (several orders waiting in the ring travel together).
    batch: Vec<(usize, Vec<u8>)>,
}

impl<C: Communicator> Serving<'_, C> {
    /// Serve requests and orders until `Shutdown`: its reply channel.
    fn serve(&mut self, workers: &mut [Worker]) -> Option<mpsc::Sender<()>> {
        loop {
            if self.hub.pending.load(SeqCst) {
                for request in self.hub.take_requests() {
                    match request {
                        Request::Attach(link, reply) => {
                            let _ = reply.send(self.attach(workers, link));
                        }
                        Request::Detach => {
                            self.attached = None;
                            self.held = None;
                        }
                        Request::Lost(w) => self.give_up(workers, w),
                        Request::Shutdown(done) => return Some(done),
                    }
                }
            }
            let out: usize = workers.iter().map(|w| w.out.len()).sum();
            let mut progressed = false;
            while let Some(message) = self.comm.any_process().immediate_matched_probe() {
                let (bytes, status) = message.matched_receive_vec::<u8>();
                self.answer(workers, status.source_rank(), status.tag(), &bytes);
                progressed = true;
            }
            if let Some(order) = self.held.take() {
                if self.idle_rank(workers).is_some() {
                    self.dispatch(workers, order);
                    self.flush(workers);
                    progressed = true;
                } else {
                    self.held = Some(order);
                }
            }
            if let Some(tasks) = self.attached.as_ref().map(|a| a.link.tasks.clone())
                && self.held.is_none()
                && (out == 0 || (self.has_room(workers) && tasks.has_data()))
            {
                // With nothing out, sleep on the ring until an order (or a request's wake-up
                // byte) comes. The engine's shut-down drains its ring, so a wake-up byte can
                // be taken by another thread: the sleep is bounded by `IDLE_TICK` to see
                // requests anyway. Orders wake the hub at once.
                let now = Instant::now();
                let deadline = if out > 0 { now } else { now + IDLE_TICK };
                if let Ok(Some(order)) = tasks.get(Some(deadline), |bytes| bytes.to_vec()) {
                    self.dispatch(workers, order);
                    // Whatever else is waiting goes out with it, while ranks have room.
                    while self.held.is_none() && self.has_room(workers) && tasks.has_data() {
                        match tasks.get(Some(Instant::now()), |bytes| bytes.to_vec()) {
                            Ok(Some(order)) => self.dispatch(workers, order),
                            _ => break,
                        }
                    }
                    self.flush(workers);
                }
                continue;
            }
            if out == 0 && self.attached.is_none() {
                let requests = self.hub.lock();
                if requests.queue.is_empty() {
                    drop(
                        self.hub
                            .arrived
                            .wait(requests)
                            .unwrap_or_else(|e| e.into_inner()),
                    );
                }
                continue;
            }
            if !progressed {
                std::thread::yield_now();
            }
        }
    }

    fn attach(
        &mut self,
        workers: &mut [Worker],
        link: RemoteLink,
    ) -> Result<Vec<(String, u32)>, PoolError> {
        let usable: Vec<usize> = (0..workers.len()).filter(|&i| !workers[i].lost).collect();
        if usable.is_empty() {
            return Err(PoolError::Mpi(MpiError::NoWorkers));
        }
        let ranks: Vec<usize> = usable.into_iter().take(link.statuses.len()).collect();
        if ranks.len() < link.statuses.len() {
            return Err(PoolError::Failed(format!(
                "the pool asked for {} MPI workers and {} are left",
                link.statuses.len(),
                ranks.len()
            )));
        }
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        self.hub.epoch.store(epoch, SeqCst);
        let init = link
            .init
            .as_ref()
            .map(|(code, arg)| (*code, serde_bytes::ByteBuf::from(arg.clone())));
        for (index, &w) in ranks.iter().enumerate() {
            let attach = Command::Attach {
                epoch,
                index: index as u32,
                init: init.clone(),
            };
            self.comm
                .process_at_rank(workers[w].rank)
                .send_with_tag(&wire::encode(&attach)[..], wire::TAG_COMMAND);
        }
        let names = ranks
            .iter()
            .map(|&w| {
                let worker = &workers[w];
                (
                    format!("MpiWorker-{}@{}", worker.rank, worker.host),
                    worker.pid,
                )
            })
            .collect();
        self.attached = Some(Attachment {
            epoch,
            done: vec![false; ranks.len()],
            ranks,
            link,
        });
        Ok(names)
    }

    /// Whether some rank of the attachment can take another order.
    fn has_room(&self, workers: &[Worker]) -> bool {
        self.attached.as_ref().is_some_and(|a| {
            a.ranks
                .iter()
                .zip(&a.done)
                .any(|(&w, done)| !done && workers[w].has_room())
        })
    }

    /// The attachment's worker with nothing out, if any.
    fn idle_rank(&self, workers: &[Worker]) -> Option<usize> {
        let a = self.attached.as_ref()?;
        (0..a.ranks.len()).find(|&i| !a.done[i] && workers[a.ranks[i]].out.is_empty())
    }

    /// An order from the engine's task ring.
    fn dispatch(&mut self, workers: &mut [Worker], order: Vec<u8>) {
        let Some(a) = self.attached.as_mut() else {
            return;
        };
        let Ok((order_head, _)) = postcard::take_from_bytes::<Order>(&order) else {
            // A wake-up for pending requests.
            return;
        };
        match order_head {
            Order::Run { id, .. } => {
                // The least busy rank with room (`has_room` let this order in, so there is
                // one unless every rank is gone).
                let best = (0..a.ranks.len())
                    .filter(|&i| !a.done[i] && workers[a.ranks[i]].has_room())
                    .min_by_key(|&i| workers[a.ranks[i]].out.len());
                if order.len() > EAGER && best.is_some_and(|i| !workers[a.ranks[i]].out.is_empty())
                {
                    self.held = Some(order);
                    return;
                }
                let Some(i) = best else {
                    // Every worker is gone: the engine fails the chunk when it learns that.
                    return;
                };
                let w = a.ranks[i];
                self.batch.push((w, order));
                let worker = &mut workers[w];
                worker.out.push_back((a.epoch, id));
                if worker.out.len() == 1 {
                    worker.front_since = Some(Instant::now());
                    let status = &a.link.statuses[i];
                    status.claim(id);
                    status.start_item(0, true);
                }
            }
            Order::Stop => {
                // One worker leaves this pool: any that has not (it has nothing out by now).
                if let Some(i) = (0..a.done.len()).find(|&i| !a.done[i]) {
                    a.done[i] = true;
                    put_report(
                        &a.link.results,
                        &Report::Ended {
                            worker: i as u32,
                            generation: REMOTE_GENERATION,
                        },
                    );
                }
            }
        }
    }

    /// Send the dispatched orders, grouped per rank: a message holds as many orders as fit
    /// in [`EAGER`] bytes (`TAG_ORDERS`; one order alone is a `TAG_ORDER`), so that no send to
    /// a busy rank can block the hub (see [`EAGER`]); a rank answers them in order.
    fn flush(&mut self, workers: &[Worker]) {
        let mut batch = std::mem::take(&mut self.batch);
        while let Some(&(w, _)) = batch.first() {
            let (mine, rest): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(x, _)| *x == w);
            batch = rest;
            let rank = self.comm.process_at_rank(workers[w].rank);
            let mut message: Vec<Vec<u8>> = Vec::new();
            let mut size = 0;
            let send = |message: &mut Vec<Vec<u8>>| match message.len() {
                0 => {}
                1 => rank.send_with_tag(&message[0][..], wire::TAG_ORDER),
                _ => rank.send_with_tag(&wire::encode_orders(message)[..], wire::TAG_ORDERS),
            };
            for (_, order) in mine {
                if !message.is_empty() && size + order.len() + 4 > EAGER {
                    send(&mut message);
                    message.clear();
                    size = 0;
                }
                size += order.len() + 4;
                message.push(order);
            }
            send(&mut message);
        }
    }

    /// A message from worker rank `rank`.
    fn answer(&mut self, workers: &mut [Worker], rank: Rank, tag: i32, bytes: &[u8]) {
        let Some(w) = workers.iter().position(|w| w.rank == rank) else {
            return;
        };
        if workers[w].lost {
            return;
        }
        let attached = self.attached.as_ref();
        let index = attached.and_then(|a| a.ranks.iter().position(|&r| r == w));
        match tag {
            wire::TAG_DONE => {
                let Some((epoch, _)) = workers[w].out.pop_front() else {
                    return;
                };
                let worker = &mut workers[w];
                worker.quick = worker.front_since.is_some_and(|t| t.elapsed() < QUICK);
                worker.front_since = (!worker.out.is_empty()).then(Instant::now);
                let (Some(a), Some(i)) = (attached, index) else {
                    return;
                };
                if epoch != a.epoch {
                    return;
                }
                let _ = a.link.results.put(bytes, None);
                let status = &a.link.statuses[i];
                match workers[w].out.front() {
                    Some(&(e, next)) if e == a.epoch => {
                        status.claim(next);
                        status.start_item(0, true);
                    }
                    _ => status.finish(),
                }
            }
            wire::TAG_INIT => {
                let (Some(a), Some(i)) = (attached, index) else {
                    return;
                };
                let Ok(reply) = postcard::from_bytes::<InitReply>(bytes) else {
                    return;
                };
                if reply.epoch != a.epoch {
                    return;
                }
                match reply.result {
                    Ok(()) => a.link.statuses[i].ready.store(1, SeqCst),
                    Err(report) => {
                        let report = report.unwrap_or(crate::panic_report::PanicReport {
                            message: "the initializer could not run".into(),
                            location: None,
                            backtrace: String::new(),
                            thread: None,
                        });
                        put_report(
                            &a.link.results,
                            &Report::InitFailed {
                                worker: i as u32,
                                report,
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// The engine gave up worker `i` of the attachment: return its waiting orders, report
    /// its end, never use the rank again.
    fn give_up(&mut self, workers: &mut [Worker], i: usize) {
        let Some(a) = self.attached.as_mut() else {
            return;
        };
        let Some(&w) = a.ranks.get(i) else {
            return;
        };
        let worker = &mut workers[w];
        worker.lost = true;
        a.done[i] = true;
        let waiting: Vec<u64> = worker
            .out
            .iter()
            .skip(1)
            .filter(|(epoch, _)| *epoch == a.epoch)
            .map(|(_, id)| *id)
            .collect();
        worker.out.clear();
        if !waiting.is_empty() {
            put_report(&a.link.results, &Report::Returned { ids: waiting });
        }
        put_report(
            &a.link.results,
            &Report::Ended {
                worker: i as u32,
                generation: REMOTE_GENERATION,
            },
        );
    }
}

fn put_report(results: &Ring, report: &Report) {
    let _ = results.put(&wire::encode(report), None);
}
