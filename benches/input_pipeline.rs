//! Time and heap peak of each phase of input generation, on the largest real fixture.
//!
//! `cargo bench --bench input_pipeline` (set `INPUT_BENCH_DIR` to a fixture directory to pick
//! another block, `INPUT_BENCH_ITERS` for the number of runs; default 10). Phases: JSON parse,
//! conversion to ethrex types, rkyv serialization, native validation; plus, on the same bytes,
//! a bare `serde_json::Value` parse as the yardstick for the JSON phase. Medians are reported.
//! Peak heap is measured by a counting allocator: the highest live-bytes figure during the
//! phase, above what was live when it began.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ethproofs_daemon::block::chainspec::parse_config;
use ethproofs_daemon::block::input::{self, program, validate};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its result, its duration and the heap it needed above the live baseline.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let t = Instant::now();
    let out = f();
    let elapsed = t.elapsed();
    (out, elapsed, PEAK.load(Ordering::Relaxed) - base)
}

#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    peaks: Vec<usize>,
}

impl Samples {
    fn push(&mut self, d: Duration, peak: usize) {
        self.times.push(d);
        self.peaks.push(peak);
    }
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
    fn peak_mib(&self) -> f64 {
        *self.peaks.iter().max().unwrap_or(&0) as f64 / (1024.0 * 1024.0)
    }
}

fn fixture_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("INPUT_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let largest = std::fs::read_dir(repo.join("../shared/fixtures")).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("debug_executionWitness.json").is_file())
            .max_by_key(|p| std::fs::metadata(p.join("debug_executionWitness.json")).map(|m| m.len()).unwrap_or(0))
    });
    largest.unwrap_or_else(|| {
        eprintln!("*** ../shared/fixtures not found: benchmarking the small in-repo mini chain instead ***");
        repo.join("tests/data/mini-chain")
    })
}

fn vm_hwm_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us with no such flag: do one pass.
    let benching = std::env::args().any(|a| a == "--bench");
    let iters: usize =
        if benching { std::env::var("INPUT_BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10) } else { 1 };
    let dir = fixture_dir();
    let block_json = std::fs::read(dir.join("eth_getBlockByNumber.json")).expect("block file");
    let witness_json = std::fs::read(dir.join("debug_executionWitness.json")).expect("witness file");
    let chain_text = std::fs::read_to_string(dir.join("chain.json")).expect("chain file");
    let chain = parse_config(&chain_text, "chain.json").expect("chain config");
    let json_mib = (block_json.len() + witness_json.len()) as f64 / (1024.0 * 1024.0);

    let (mut parse, mut convert, mut serialize, mut validation, mut bare) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default(), Samples::default());
    let mut payload_len = 0;
    for _ in 0..iters {
        let (raw, d, p) = measure(|| input::parse(&block_json, &witness_json).expect("parse"));
        parse.push(d, p);
        let ((program_input, _summary), d, p) = measure(|| raw.convert(&chain).expect("convert"));
        convert.push(d, p);
        let (payload, d, p) = measure(|| program::serialize(&program_input).expect("serialize"));
        serialize.push(d, p);
        drop(program_input);
        payload_len = payload.len();
        let (report, d, p) = measure(|| validate::validate(&payload).expect("validate"));
        validation.push(d, p);
        std::hint::black_box(report);
        drop(payload);

        let (values, d, p) = measure(|| {
            let b: serde_json::Value = serde_json::from_slice(&block_json).expect("bare block parse");
            let w: serde_json::Value = serde_json::from_slice(&witness_json).expect("bare witness parse");
            (b, w)
        });
        bare.push(d, p);
        std::hint::black_box(values);
    }

    println!(
        "input pipeline: {} ({json_mib:.2} MiB of JSON → {payload_len} input bytes), median of {iters}",
        dir.display()
    );
    println!("{:<28} {:>12} {:>16}", "phase", "time (ms)", "peak heap (MiB)");
    for (name, s) in [
        ("JSON parse", &parse),
        ("conversion", &convert),
        ("rkyv serialization", &serialize),
        ("native validation", &validation),
        ("bare serde_json::Value", &bare),
    ] {
        println!("{name:<28} {:>12.2} {:>16.2}", s.median().as_secs_f64() * 1e3, s.peak_mib());
    }
    println!(
        "JSON parse / bare serde_json::Value parse: {:.2}x time, {:.2}x peak heap",
        parse.median().as_secs_f64() / bare.median().as_secs_f64(),
        parse.peak_mib() / bare.peak_mib().max(f64::EPSILON)
    );
    if let Some(hwm) = vm_hwm_mib() {
        println!("process peak RSS (VmHWM): {hwm:.1} MiB");
    }
}
