//! Nonce-search hash rate, judged against a bound measured in the same run.
//!
//! Criterion reports each rate; afterwards a ratio report (stderr) repeats the key
//! measurements back to back, several times, and prints:
//! - the bound (a): independent SHA-NI compressions per second on one core (the fastest of 2,
//!   3 or 4 interleaved message streams, two lane orders), and (a)/2, since a nonce costs two
//!   compressions;
//! - one worker thread's nonce rate (b) per kernel, and (b) / ((a)/2) (goal ≥ 0.85);
//! - two threads against one (goal ≥ 1.85 on two idle cores);
//! - sha2's out-of-line `compress256` in a midstate loop, for scale.
//!
//! Every figure is given by wall clock and by the thread's CPU time: on a machine shared with
//! other jobs the second leaves out time spent waiting for a core. Absolute numbers move with
//! the load; the ratios are what to compare.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use lode_miner::sha256::shani_compression_bound;
use lode_miner::{HeaderHasher, Kernel, SearchOutcome, Target};
use sha2::digest::generic_array::GenericArray;

/// The bound's variants (streams, lane order); the bound is the fastest of them.
const BOUND_VARIANTS: [(usize, bool); 6] = [(2, false), (2, true), (3, false), (3, true), (4, false), (4, true)];

/// A target no hash meets, so every search runs its whole range.
const NEVER: [u8; 32] = [0; 32];

fn header() -> [u8; 80] {
    let mut h = [0u8; 80];
    for (i, b) in h.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    h
}

/// Hashes `count` nonces from `start` on one thread.
fn search(hasher: &HeaderHasher, start: u32, count: u32) {
    let stop = AtomicBool::new(false);
    let outcome = hasher.search(start..=start + (count - 1), &Target::from_le_bytes(NEVER), &stop);
    assert_eq!(outcome, SearchOutcome::Exhausted);
}

/// sha2's `compress256` (out of line, runtime-dispatched) in the same midstate loop: the
/// baseline the issue quotes (≈ 8.6 M nonces/s per core).
fn sha2_midstate_loop(header: &[u8; 80], count: u32) -> u32 {
    let mut mid = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let h0 = mid;
    sha2::compress256(&mut mid, &[*GenericArray::from_slice(&header[..64])]);
    let mut tail = [0u8; 64];
    tail[..16].copy_from_slice(&header[64..]);
    tail[16] = 0x80;
    tail[62..].copy_from_slice(&640u16.to_be_bytes());
    let mut second = [0u8; 64];
    second[32] = 0x80;
    second[62..].copy_from_slice(&256u16.to_be_bytes());
    let mut hits = 0;
    for nonce in 0..count {
        tail[12..16].copy_from_slice(&nonce.to_le_bytes());
        let mut s = mid;
        sha2::compress256(&mut s, &[*GenericArray::from_slice(&tail)]);
        for (i, w) in s.iter().enumerate() {
            second[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        let mut d = h0;
        sha2::compress256(&mut d, &[*GenericArray::from_slice(&second)]);
        hits += u32::from(d[7] == 0);
    }
    hits
}

/// This thread's CPU time so far (Linux schedstat), if available.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Nonces per second over `threads` threads, each hashing `per_thread` nonces: by wall clock,
/// and per CPU-second of a thread (NaN without schedstat). The second says whether threads
/// slow each other down when they do run; the first also counts time spent waiting for a
/// core another process holds.
fn threaded_rate(hasher: &HeaderHasher, threads: u32, per_thread: u32) -> (f64, f64) {
    let barrier = Barrier::new(threads as usize + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let cpu = thread_cpu_time();
                    search(hasher, t * per_thread, per_thread);
                    let cpu = thread_cpu_time().zip(cpu).map(|(end, start)| end.saturating_sub(start));
                    (Instant::now(), cpu)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut ended = started;
        let mut cpu = Some(Duration::ZERO);
        for w in workers {
            let (end, used) = w.join().expect("worker");
            ended = ended.max(end);
            cpu = cpu.zip(used).map(|(a, b)| a + b);
        }
        let nonces = f64::from(threads) * f64::from(per_thread);
        let per_cpu = cpu.map_or(f64::NAN, |c| nonces / c.as_secs_f64());
        (nonces / (ended - started).as_secs_f64(), per_cpu)
    })
}

/// Work per second by wall clock and per second of this thread's CPU time (NaN without
/// schedstat). On a machine shared with other jobs, the CPU-time rate leaves out the time
/// the thread waited for a core.
fn rate<F: FnOnce()>(work: f64, f: F) -> (f64, f64) {
    let cpu = thread_cpu_time();
    let started = Instant::now();
    f();
    let wall = started.elapsed();
    let cpu = thread_cpu_time().zip(cpu).map(|(end, start)| end.saturating_sub(start));
    (
        work / wall.as_secs_f64(),
        cpu.map_or(f64::NAN, |c| work / c.as_secs_f64()),
    )
}

/// One quantity measured once per repetition, by wall clock and by CPU time.
#[derive(Clone, Default)]
struct Series {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Series {
    fn push(&mut self, (wall, cpu): (f64, f64)) {
        self.wall.push(wall);
        self.cpu.push(cpu);
    }

    /// Medians (wall, CPU).
    fn medians(&self) -> (f64, f64) {
        (median(self.wall.clone()), median(self.cpu.clone()))
    }
}

fn criterion_benches(c: &mut Criterion) {
    let header = header();
    let mut g = c.benchmark_group("hashrate");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    for (streams, alternate) in BOUND_VARIANTS {
        if shani_compression_bound(streams, alternate, 1).is_some() {
            g.throughput(Throughput::Elements(streams as u64 * 10_000));
            g.bench_function(
                format!("bound: {streams} independent sha-ni compressions, alternate {alternate}"),
                |b| b.iter(|| shani_compression_bound(streams, alternate, black_box(10_000))),
            );
        }
    }
    g.throughput(Throughput::Elements(100_000));
    for kernel in Kernel::ALL {
        let Some(hasher) = HeaderHasher::with_kernel(&header, kernel) else {
            continue;
        };
        g.bench_function(format!("nonces: {}", kernel.name()), |b| {
            b.iter(|| search(&hasher, 0, 100_000))
        });
    }
    g.bench_function("nonces: sha2 compress256 midstate loop", |b| {
        b.iter(|| sha2_midstate_loop(&header, black_box(100_000)))
    });
    g.finish();
}

criterion_group!(benches, criterion_benches);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Back-to-back measurements, repeated; each ratio's numerator and denominator come from the
/// same repetition, and the report gives the median over repetitions, by wall clock and by
/// CPU time.
fn ratio_report() {
    const REPS: usize = 9;
    const NONCES: u32 = 6_000_000;
    const BOUND_ITERS: u64 = 1_500_000;
    let header = header();
    let best = HeaderHasher::new(&header);
    let kernels: Vec<HeaderHasher> = Kernel::ALL
        .into_iter()
        .filter_map(|k| HeaderHasher::with_kernel(&header, k))
        .collect();
    let has_bound = shani_compression_bound(2, false, 1).is_some();

    let mut bound = Series::default();
    let mut bound_variants = vec![Series::default(); BOUND_VARIANTS.len()];
    let mut per_kernel = vec![Series::default(); kernels.len()];
    let mut kernel_ratio = vec![Series::default(); kernels.len()];
    let mut sha2_ref = Series::default();
    let mut one = Series::default();
    let mut two = Series::default();
    let mut scaling = Series::default();
    for _ in 0..REPS {
        let mut a = (f64::NAN, f64::NAN);
        if has_bound {
            a = (0.0, 0.0);
            for (i, (streams, alternate)) in BOUND_VARIANTS.into_iter().enumerate() {
                let r = rate(streams as f64 * BOUND_ITERS as f64, || {
                    black_box(shani_compression_bound(streams, alternate, BOUND_ITERS));
                });
                bound_variants[i].push(r);
                a = (a.0.max(r.0), a.1.max(r.1));
            }
        }
        bound.push(a);
        for (i, hasher) in kernels.iter().enumerate() {
            let n = if hasher.kernel() == Kernel::Portable {
                NONCES / 8
            } else {
                NONCES
            };
            let b = rate(f64::from(n), || search(hasher, 0, n));
            per_kernel[i].push(b);
            kernel_ratio[i].push((b.0 / (a.0 / 2.0), b.1 / (a.1 / 2.0)));
        }
        sha2_ref.push(rate(f64::from(NONCES), || {
            black_box(sha2_midstate_loop(&header, NONCES));
        }));
        let r1 = threaded_rate(&best, 1, NONCES);
        let r2 = threaded_rate(&best, 2, NONCES);
        one.push(r1);
        two.push(r2);
        // By CPU time, two threads would do 2× if each got a core: 2 × the per-CPU-second ratio.
        scaling.push((r2.0 / r1.0, 2.0 * r2.1 / r1.1));
    }

    let m = |x: f64| x / 1e6;
    eprintln!();
    eprintln!("=== ratio report: medians of {REPS} repetitions, by wall clock | by thread CPU time ===");
    eprintln!("kernel chosen at run time: {}", lode_miner::kernel_name());
    let (aw, ac) = bound.medians();
    eprintln!(
        "(a) bound, independent SHA-NI compressions/s on 1 core: {:.2} M | {:.2} M; (a)/2 = {:.2} M | {:.2} M nonces/s",
        m(aw),
        m(ac),
        m(aw) / 2.0,
        m(ac) / 2.0
    );
    for (i, (streams, alternate)) in BOUND_VARIANTS.into_iter().enumerate() {
        if !bound_variants[i].wall.is_empty() {
            let (w, c) = bound_variants[i].medians();
            eprintln!(
                "    bound variant {streams} streams, alternate {alternate:5}: {:.2} M | {:.2} M",
                m(w),
                m(c)
            );
        }
    }
    for (i, hasher) in kernels.iter().enumerate() {
        let (w, c) = per_kernel[i].medians();
        let (rw, rc) = kernel_ratio[i].medians();
        eprintln!(
            "(b) {:<10} 1 thread: {:6.2} M | {:6.2} M nonces/s   (b)/((a)/2) = {:.3} | {:.3}",
            hasher.kernel_name(),
            m(w),
            m(c),
            rw,
            rc
        );
    }
    let (sw, sc) = sha2_ref.medians();
    eprintln!(
        "sha2 compress256 midstate loop: {:.2} M | {:.2} M nonces/s",
        m(sw),
        m(sc)
    );
    let (ow, oc) = one.medians();
    let (tw, _) = two.medians();
    let (kw, kc) = scaling.medians();
    eprintln!(
        "(c) {}: 1 thread {:.2} M, 2 threads {:.2} M nonces/s (wall); 2-thread/1-thread = {:.3} | {:.3}",
        best.kernel_name(),
        m(ow),
        m(tw),
        kw,
        kc
    );
    eprintln!(
        "    {} / sha2 midstate loop = {:.2} | {:.2}",
        best.kernel_name(),
        ow / sw,
        oc / sc
    );
    eprintln!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
}

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    ratio_report();
}
