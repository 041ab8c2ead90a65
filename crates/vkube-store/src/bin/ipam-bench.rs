//! IPAM throughput bench: many processes allocating from, then releasing
//! to, one pool in one SQLite state file. Proves no address was handed out
//! twice, both from what each process was told and from the file itself.
//!
//! ```text
//! ipam-bench run --state FILE [--processes 8] [--allocations 2000]
//! ```
//!
//! `run` re-executes itself as `worker allocate|release` processes.
//! `bench/ipam.sh` builds it in release mode and runs it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use vkube_core::ipam::RawIpPool;
use vkube_store::{ApplyLocks, LeaseFilter, SqliteStore, Store, Timestamp};

const POOL: &str = "bench";

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("worker") => worker(&args[1..]),
        _ => Err("usage: ipam-bench run --state FILE [--processes N] [--allocations N]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs.
fn options(args: &[String]) -> Result<HashMap<String, String>, Failure> {
    let mut options = HashMap::new();
    for pair in args.chunks(2) {
        match pair {
            [name, value] if name.starts_with("--") => {
                options.insert(name.trim_start_matches("--").to_owned(), value.clone());
            }
            _ => return Err(format!("unexpected arguments {pair:?}").into()),
        }
    }
    Ok(options)
}

fn number(options: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, Failure> {
    options.get(name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("--{name}: `{v}` is not a number").into())
    })
}

/// The store is async: each process drives it from one current-thread
/// runtime (SQLite work still runs on its blocking pool).
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn node(worker: usize, n: usize) -> String {
    format!("node-{worker}-{n}")
}

/// One worker process: allocate or release `count` nodes of cluster
/// `bench-<worker>`, printing `address cluster node` per operation.
fn worker(args: &[String]) -> Result<(), Failure> {
    let (mode, rest) = args.split_first().ok_or("worker needs allocate|release")?;
    let options = options(rest)?;
    let state = options.get("state").ok_or("--state is required")?;
    let worker = number(&options, "worker", 0)?;
    let count = number(&options, "count", 0)?;
    let runtime = runtime()?;
    let store = runtime.block_on(SqliteStore::open(state))?;
    let cluster = format!("bench-{worker}");
    // The bench is the cluster's only applier: one lock for the whole run.
    let holder = format!("ipam-bench:{}", std::process::id());
    let lock = runtime.block_on(store.acquire_apply_lock(
        &cluster,
        &holder,
        Timestamp::now(),
        Duration::from_secs(3600),
    ))?;
    let fence = lock.fence();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for n in 0..count {
        let node = node(worker, n);
        match mode.as_str() {
            "allocate" => {
                let lease = runtime.block_on(store.allocate(&fence, POOL, &node))?;
                writeln!(out, "{} {cluster} {node}", lease.address)?;
            }
            "release" => {
                let released = runtime.block_on(store.release_node(&fence, &node))?;
                if released.len() != 1 {
                    return Err(format!(
                        "releasing {cluster}/{node} returned {} leases",
                        released.len()
                    )
                    .into());
                }
                writeln!(out, "{} {cluster} {node}", released[0].address)?;
            }
            other => return Err(format!("unknown worker mode `{other}`").into()),
        }
    }
    out.flush()?;
    runtime.block_on(store.release_apply_lock(&lock))?;
    Ok(())
}

/// Starts `processes` workers in `mode`; returns wall time and every
/// `address -> (cluster, node)` they reported, failing on any duplicate.
fn phase(
    state: &Path,
    mode: &str,
    processes: usize,
    count: usize,
) -> Result<(Duration, HashMap<String, String>), Failure> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let children = (0..processes)
        .map(|worker| {
            Command::new(&exe)
                .args(["worker", mode, "--state"])
                .arg(state)
                .args([
                    "--worker",
                    &worker.to_string(),
                    "--count",
                    &count.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = children
        .into_iter()
        .map(|child| child.wait_with_output())
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (worker, output) in outputs.into_iter().enumerate() {
        if !output.status.success() {
            return Err(format!("{mode} worker {worker} failed ({})", output.status).into());
        }
        let text = String::from_utf8(output.stdout)?;
        let mut lines = 0;
        for line in text.lines() {
            let (address, owner) = line.split_once(' ').ok_or("malformed worker output")?;
            if let Some(previous) = seen.insert(address.to_owned(), owner.to_owned()) {
                return Err(
                    format!("DUPLICATE: {address} {mode}d for `{previous}` and `{owner}`").into(),
                );
            }
            lines += 1;
        }
        if lines != count {
            return Err(
                format!("{mode} worker {worker} reported {lines} of {count} operations").into(),
            );
        }
    }
    Ok((elapsed, seen))
}

/// Counts straight from the file: rows, distinct addresses, duplicate
/// (pool, address) pairs and distinct owners.
fn audit(state: &Path) -> Result<(u64, u64, u64, u64), Failure> {
    let connection = rusqlite::Connection::open(state)?;
    let (rows, distinct, owners) = connection.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT address), COUNT(DISTINCT cluster || '/' || node) FROM ip_leases",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let duplicates = connection.query_row(
        "SELECT COUNT(*) FROM (SELECT pool_name, address FROM ip_leases GROUP BY pool_name, address HAVING COUNT(*) > 1)",
        [],
        |row| row.get(0),
    )?;
    Ok((rows, distinct, duplicates, owners))
}

fn run(args: &[String]) -> Result<(), Failure> {
    let options = options(args)?;
    let state = PathBuf::from(options.get("state").ok_or("--state is required")?);
    let processes = number(&options, "processes", 8)?;
    let count = number(&options, "allocations", 2000)?;
    let total = processes * count;
    if state.exists() {
        return Err(format!(
            "{} exists; the bench needs a fresh state file",
            state.display()
        )
        .into());
    }
    let pool = RawIpPool {
        name: POOL.into(),
        subnet: Some("10.64.0.0/16".into()),
        gateway: Some("10.64.0.1".into()),
        name_servers: vec!["10.64.0.53".into()],
        ..RawIpPool::default()
    }
    .validate()?;
    if pool.capacity() < total as u128 {
        return Err(format!(
            "pool holds {} addresses, bench needs {total}",
            pool.capacity()
        )
        .into());
    }
    let runtime = runtime()?;
    runtime.block_on(async {
        SqliteStore::open(&state)
            .await?
            .create_pools(&[pool], false)
            .await
    })?;
    println!(
        "ipam bench: {processes} processes x {count} operations on {}",
        state.display()
    );

    let (elapsed, allocated) = phase(&state, "allocate", processes, count)?;
    let rate = total as f64 / elapsed.as_secs_f64();
    let (rows, distinct, duplicates, owners) = audit(&state)?;
    println!(
        "allocate: {total} in {:.2}s = {rate:.0} allocations/s; reported {} distinct addresses; \
         file: {rows} leases, {distinct} distinct addresses, {owners} distinct nodes, {duplicates} duplicates",
        elapsed.as_secs_f64(),
        allocated.len(),
    );
    let allocate_ok = allocated.len() == total
        && rows == total as u64
        && distinct == rows
        && owners == rows
        && duplicates == 0;

    let (elapsed, released) = phase(&state, "release", processes, count)?;
    let release_rate = total as f64 / elapsed.as_secs_f64();
    let (rows_after, _, _, _) = audit(&state)?;
    let released_match = released.len() == total
        && released
            .iter()
            .all(|(address, owner)| allocated.get(address) == Some(owner));
    println!(
        "release:  {total} in {:.2}s = {release_rate:.0} releases/s; each release returned its own lease: {released_match}; \
         file: {rows_after} leases left",
        elapsed.as_secs_f64(),
    );
    let left = runtime
        .block_on(async {
            SqliteStore::open(&state)
                .await?
                .leases(&LeaseFilter::default())
                .await
        })?
        .len();
    let release_ok = released_match && rows_after == 0 && left == 0;

    println!(
        "summary: {rate:.0} allocations/s, {release_rate:.0} releases/s, duplicates: {}, {}",
        duplicates,
        if allocate_ok && release_ok {
            "PASS"
        } else {
            "FAIL"
        }
    );
    if allocate_ok && release_ok {
        Ok(())
    } else {
        Err("verification failed".into())
    }
}
