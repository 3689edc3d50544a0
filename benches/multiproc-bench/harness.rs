//! Output and measurement: the case context, records, repetitions and statistics.

#[allow(unused_imports)]
use crate::*;

// ------------------------------------------------------------------------------------ output

/// State shared by the cases: the workload scale and the output bookkeeping.
pub(crate) struct Ctx {
    pub(crate) scale: f64,
    pub(crate) case_start: Cell<Instant>,
    pub(crate) case_cpu: Cell<Option<(u64, u64)>>,
    pub(crate) emitted: RefCell<HashSet<String>>,
}

impl Ctx {
    /// Workload size after `--scale` (Python's `sz`).
    pub(crate) fn sz(&self, n: usize) -> usize {
        ((n as f64 * self.scale) as usize).max(1)
    }

    pub(crate) fn begin_case(&self) {
        self.case_start.set(Instant::now());
        self.case_cpu.set(cpu_jiffies());
    }

    /// Print one record (Python's `emit`): adds `case_wall_s` and `cpu_steal_pct`.
    pub(crate) fn emit(&self, case: &str, value: J, unit: &str, mut params: Params) {
        let wall = self.case_start.get().elapsed().as_secs_f64();
        params.push(("case_wall_s".into(), wall.into()));
        if let (Some(now), Some(then)) = (cpu_jiffies(), self.case_cpu.get())
            && now.1 > then.1
        {
            // Share of all CPUs' time stolen by the hypervisor during this case (noise).
            let pct = 100.0 * (now.0 - then.0) as f64 / (now.1 - then.1) as f64;
            params.push(("cpu_steal_pct".into(), ((pct * 10.0).round() / 10.0).into()));
        }
        let progress = match &value {
            J::Null => "ERROR".to_string(),
            J::Float(x) => format!("{} {unit}", py_float(round_sig(*x, 4))),
            J::Int(i) => format!("{i} {unit}"),
            other => format!("{other:?} {unit}"),
        };
        print_record(case, value.rounded(5), unit, J::Obj(params).rounded(5));
        self.emitted.borrow_mut().insert(case.to_string());
        eprintln!("  {case:32} {progress}   ({wall:.1}s)");
    }

    pub(crate) fn emit_error(&self, case: &str, error: String) {
        self.emit(case, J::Null, "", params! { "error" => error });
    }
}

pub(crate) fn print_record(case: &str, value: J, unit: &str, params: J) {
    let rec = J::Obj(vec![
        ("case".into(), case.into()),
        ("value".into(), value),
        ("unit".into(), unit.into()),
        ("params".into(), params),
    ]);
    let mut line = String::new();
    rec.write(&mut line);
    line.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// `(steal, total)` jiffies from `/proc/stat`: steal = time the hypervisor ran someone else.
pub(crate) fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (v.len() == 8).then(|| (v[7], v.iter().sum()))
}

pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `samples`, `min`, `max` (Python's `stats`).
pub(crate) fn stats(samples: &[f64]) -> Params {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    params! { "samples" => samples, "min" => min, "max" => max }
}

pub(crate) type Measured<T> = Result<T, Box<dyn Error>>;

/// One warmup call, then `REPS` timed calls: `(warm_result, results)` (Python's `repeat`).
pub(crate) fn repeat(
    mut run: impl FnMut(usize) -> Measured<f64>,
    warm_size: usize,
    size: usize,
) -> Measured<(f64, Vec<f64>)> {
    let warm = run(warm_size)?;
    let samples = (0..REPS)
        .map(|_| run(size))
        .collect::<Measured<Vec<f64>>>()?;
    Ok((warm, samples))
}

/// The consumer of `k` numbered items got the last one last.
pub(crate) fn expect_last(x: Option<u64>, k: usize) -> Result<(), Box<dyn Error>> {
    if x == Some(k as u64 - 1) {
        Ok(())
    } else {
        Err(bench_error(format!(
            "last item {x:?}, expected Some({})",
            k - 1
        )))
    }
}

pub(crate) fn bench_error(msg: impl Into<String>) -> Box<dyn Error> {
    msg.into().into()
}
