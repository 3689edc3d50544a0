//! Shared memory: write bandwidth and array sums.

#[allow(unused_imports)]
use crate::*;

pub(crate) fn case_shared_memory_write_bw(ctx: &Ctx) -> CaseResult {
    let size = ctx.sz(256) * MIB;
    let chunk = MIB;
    let shm = SharedMemory::create(size)?;
    let result = (|| -> CaseResult {
        let mut w = Worker::start(w_shm_writer, (SharedMemory::attach(shm.name())?, chunk))?;
        let conn = &mut w.conn;
        let run = |_: usize| -> Measured<f64> {
            conn.send(&Some(size as u64))?;
            let dt: f64 = conn.recv()?;
            Ok(size as f64 / dt / 1e9)
        };
        let (first_touch, samples) = repeat(run, 0, 0)?;
        let (mut a, mut b) = ([0u8], [0u8]);
        shm.read_at(0, &mut a)?;
        shm.read_at(size - 1, &mut b)?;
        let ok = a[0] == 0xA5 && b[0] == 0xA5;
        drop(w);
        let mut params = params! {
            "bytes" => size,
            "chunk_bytes" => chunk,
            "method" => "SharedMemory::write_at(off, &[0xA5; chunk]) (1 MiB chunks)",
            "writer" => "child process (timed in child)",
            "GB" => "1e9 bytes",
            "first_touch_GBps" => first_touch,
            "note" => "warmup = first write into fresh /dev/shm pages (page faults); \
                       timed reps rewrite the same, already-populated segment",
            "data_ok" => ok,
        };
        params.extend(stats(&samples));
        ctx.emit(
            "shared_memory_write_bw",
            median(&samples).into(),
            "GB/s",
            params,
        );
        if !ok {
            return Err(bench_error("shared memory contents wrong"));
        }
        Ok(())
    })();
    let unlinked = shm.unlink();
    result?;
    Ok(unlinked?)
}

pub(crate) fn case_array_sum_shared(ctx: &Ctx) -> CaseResult {
    let n = ctx.sz(10_000_000);
    let arr = Array::<f64>::zeroed(n)?;
    let data: Vec<f64> = (0..n).map(|i| i as f64).collect();
    arr.copy_from_slice(0, &data)?;
    drop(data);
    let expected = (n as u64 * (n as u64 - 1) / 2) as f64;
    let mut workers = vec![
        Worker::start(w_array_sum, arr.clone())?,
        Worker::start(w_array_sum, arr.clone())?,
    ];
    let mut par = |parts: usize| -> Measured<f64> {
        let step = n / parts;
        let t0 = Instant::now();
        for (i, w) in workers.iter_mut().take(parts).enumerate() {
            let hi = if i == parts - 1 { n } else { (i + 1) * step };
            w.conn.send(&Some(((i * step) as u64, hi as u64)))?;
        }
        let mut total = 0.0;
        for w in workers.iter_mut().take(parts) {
            total += w.conn.recv::<f64>()?;
        }
        let dt = t0.elapsed().as_secs_f64();
        if total != expected {
            return Err(bench_error(format!("sum {total} != {expected}")));
        }
        Ok(dt * 1e3)
    };
    par(1)?;
    par(2)?; // warmup
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        one.push(par(1)?);
        two.push(par(2)?);
    }
    drop(workers);
    let ratios: Vec<f64> = one.iter().zip(&two).map(|(a, b)| a / b).collect();
    let mut params = params! {
        "elements" => n,
        "array" => "multiproc::Array::<f64>::zeroed(N) (with lock, read via as_slice_unlocked())",
        "method" => "sum of a slice (8 accumulators) in pre-started worker processes, timed from command to results",
        "processes" => 2usize,
        "one_process_ms" => median(&one),
        "speedup" => median(&ratios),
        "speedup_def" => "median over 5 reps of one_process_ms / two_process_ms (run back to back)",
        "speedup_samples" => ratios.as_slice(),
        "one_process_samples" => one.as_slice(),
    };
    params.extend(stats(&two));
    ctx.emit("array_sum_shared", median(&two).into(), "ms", params);
    Ok(())
}
