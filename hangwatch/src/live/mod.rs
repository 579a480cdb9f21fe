//! Live mode: collectors feed one aggregator; the JSON stream and the TUI are views of it.
//! Live mode hands them out ([`run_stream`], [`run_published`]) and imports neither: they are
//! rendered by `output::json::stream` and `tui`, and `main` wires them.
//!
//! * the kernel collector owns the probes: it reads the ring buffer as records arrive, and once
//!   a second sends the probes' counters and hangwatch's own CPU and RSS (and re-measures the
//!   scheduler clock offsets every 30 s, for the probes and the /proc collector:
//!   [`crate::sources::clock`]);
//! * the /proc collector scans every process once per `--interval` on its own thread;
//! * the aggregator (this task) owns all state and turns inputs into outputs.

pub mod aggregator;

use std::time::Duration;

use log::{debug, warn};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use crate::{
    error::Error,
    model::{
        Filter,
        oom::{OomKill, OomVictimEvent, merge_kills},
    },
    probes::{LoadOptions, Probes, events::KernelEvent},
    procfs::{self, Detail},
    snapshot,
    sources::{
        cgroup,
        clock::{self, SharedOffsets},
        kmsg,
    },
    syscalls::{ProcTask, TaskView},
};
use aggregator::{Aggregator, Config, Input, Output};

#[derive(Debug, Clone)]
pub struct Options {
    pub filter: Filter,
    pub interval: Duration,
    /// How often a `stats` record is written in JSON mode.
    pub stats_every: Duration,
    /// The `hung` finding's threshold.
    pub hung_after: Duration,
    /// How long exited processes are kept.
    pub keep_exited: Duration,
    /// Attach the memory syscall probes (exact counts).
    pub exact_memory: bool,
    /// Which blocked threads' stacks are read.
    pub stacks: LiveStacks,
}

/// Which blocked threads live mode reads the stacks of (docs/stacks.md, "Cost").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStacks {
    /// None: `--no-stacks`, and over the whole node without `--live-stacks`.
    Off,
    /// Every wait of `--min-blocked` of the processes live mode follows (the filter's).
    Followed,
}

impl LiveStacks {
    /// The wait age from which a process's threads get a stack, or `None` for none.
    fn min_blocked_for(self, f: &Filter, p: &procfs::ProcessSample) -> Option<u64> {
        (self == LiveStacks::Followed && f.matches(p.pid, &p.stat.comm, &p.cgroup))
            .then_some(f.min_blocked_ns)
    }
}

/// Memory is sampled every this many /proc scans.
const MEM_EVERY: u64 = 2;

/// Bounded queue between the collectors and the aggregator.
const INPUT_QUEUE: usize = 8192;

/// hangwatch's own CPU (percent of one core since the last call) and RSS.
struct SelfUsage {
    last: Option<(u64, u64)>,
}

impl SelfUsage {
    fn sample(&mut self) -> (f64, u64) {
        let now = procfs::monotonic_ns();
        let me = std::process::id() as i32;
        let Some(p) = procfs::read_process(me, Detail::Stat) else { return (0.0, 0) };
        let ticks = p.cpu_ticks();
        let cpu = match self.last {
            Some((t, k)) if now > t => {
                (ticks.saturating_sub(k)) as f64
                    / procfs::clock_ticks() as f64
                    / ((now - t) as f64 / 1e9)
                    * 100.0
            }
            _ => 0.0,
        };
        self.last = Some((now, ticks));
        (cpu, p.mem.vm_rss)
    }
}

/// Threads the kernel saw wake from a long wait, passed from the ring buffer reader to the
/// /proc scanner, whose cache then stops serving them (see [`procfs::ThreadCache`]).
#[derive(Default)]
struct WakeLog {
    tids: std::sync::Mutex<Vec<i32>>,
    /// Records were lost: the scanner must not trust its cache until it re-checked.
    lost: std::sync::atomic::AtomicBool,
}

impl WakeLog {
    fn push(&self, tid: i32) {
        if let Ok(mut v) = self.tids.lock() {
            v.push(tid);
        }
    }

    /// Hands what was logged to the scanner's cache.
    fn apply(&self, cache: &mut procfs::ThreadCache) {
        let tids = self.tids.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        cache.woken(tids);
        if self.lost.swap(false, std::sync::atomic::Ordering::Relaxed) {
            cache.distrust_all();
        }
    }
}

/// Reads the ring buffer as it fills; sends health once a second.
async fn kernel_collector(
    mut probes: Probes,
    tx: mpsc::Sender<Input>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    (wakes, offsets): (std::sync::Arc<WakeLog>, std::sync::Arc<SharedOffsets>),
) {
    use std::sync::atomic::Ordering;
    let Some(ring) = probes.take_ring() else { return };
    // `AsyncFd::new` is deprecated for types that only expose a raw fd; the ring buffer owns
    // its fd for as long as the AsyncFd lives, which is what the deprecation is about.
    #[allow(deprecated)]
    let fd = AsyncFd::new(ring);
    let mut fd = match fd {
        Ok(fd) => fd,
        Err(e) => {
            warn!("cannot poll the ring buffer: {e}");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut usage = SelfUsage { last: None };
    let mut ticks = 0u64;
    let mut missed_seen = 0u64;
    let fmt = probes.oom_format();
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let Ok(mut guard) = guard else { return };
                let ring = guard.get_inner_mut();
                while let Some(item) = ring.next() {
                    let ev = crate::probes::events::decode_record(&item, fmt.as_ref());
                    drop(item);
                    let input = match ev {
                        Some(KernelEvent::WaitEnd(w)) => {
                            wakes.push(w.tid);
                            Input::WaitEnd(w)
                        }
                        Some(KernelEvent::OomVictim(mut o)) => {
                            probes.victim_memcg(&mut o);
                            probes.translate_victim(&mut o);
                            // Now, while the kernel log's lines about it are fresh and the
                            // victim may still be in its cgroup; file I/O, off the runtime.
                            let v = o.clone();
                            o.context = tokio::task::spawn_blocking(move || oom_context(&v, None))
                                .await
                                .ok()
                                .map(Box::new);
                            // Where mark_victim does not pass the task, the translation is
                            // recorded at the OOM killer's SIGKILL, just after this event: it
                            // may not have been there yet (seen under emulation); look again.
                            if o.pid == o.host_pid {
                                probes.translate_victim(&mut o);
                            }
                            Input::OomVictim(o)
                        }
                        None => continue,
                    };
                    // Backpressure, not drops: while the aggregator is busy (a scan of 10,000
                    // threads), records wait in the kernel's ring buffer, which counts exactly
                    // what it cannot hold.
                    if tx.send(input).await.is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                guard.clear_ready();
            }
            _ = tick.tick() => {
                ticks += 1;
                // The one calibration of live mode: for the probe, then for the /proc scanner.
                if ticks.is_multiple_of(clock::RECALIBRATE_EVERY.as_secs()) {
                    let _ = probes.recalibrate();
                    offsets.publish(probes.clock_offsets());
                }
                if let Some(counts) = probes.memory_counters()
                    && tx.send(Input::KernelMemory(counts)).await.is_err()
                {
                    return;
                }
                let (own_cpu_percent, own_rss_bytes) = usage.sample();
                let kernel = probes.stats();
                // A lost record or a failed read in the probe may be a wake-up never reported.
                let missed = kernel.lost_events + kernel.read_errors;
                if missed > missed_seen {
                    missed_seen = missed;
                    wakes.lost.store(true, Ordering::Relaxed);
                }
                let input = Input::Health {
                    kernel,
                    own_cpu_percent,
                    own_rss_bytes,
                    now_mono_ns: procfs::monotonic_ns(),
                };
                if tx.send(input).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Scans /proc every `interval` on a plain thread (blocking file I/O). `trust_ns`: the
/// `sched_waking` probe's threshold when it is attached (see [`procfs::ThreadCache`]).
fn proc_collector(
    tx: mpsc::Sender<Input>,
    interval: Duration,
    pids: Vec<i32>,
    shared_offsets: std::sync::Arc<SharedOffsets>,
    wakes: std::sync::Arc<WakeLog>,
    trust_ns: Option<u64>,
    (stacks, filter): (LiveStacks, Filter),
) {
    // Stacks are read here, on the I/O side, once per wait (docs/stacks.md).
    let mut gatherer = (stacks != LiveStacks::Off).then(crate::stacks::Gatherer::default);
    let mut n = 0u64;
    let mut cache = procfs::ThreadCache::with_kernel_wakeups(trust_ns);
    let mut pid_list = procfs::PidList::default();
    let mut layout_cache = crate::memory_layout::LayoutCache::default();
    let retain_cfg = crate::memory_layout::RetainCfg::default();
    loop {
        let start = std::time::Instant::now();
        // Measured by the kernel collector (the probe needs them too): read, not re-measured.
        let offsets = shared_offsets.current();
        n += 1;
        cache.begin_scan();
        wakes.apply(&mut cache);
        // A process served whole is sent by pid only (the aggregator has its sample), and is
        // not even copied unless the stacks gatherer wants every sample.
        let mut unchanged = Vec::new();
        let mut gone = std::collections::HashSet::new();
        let listed = if pids.is_empty() { pid_list.current() } else { pids.clone() };
        let (mut samples, _vanished) = snapshot::scan_with(&listed, |pid| {
            if gatherer.is_none() && cache.serve_unchanged(pid) {
                unchanged.push(pid);
                return None;
            }
            let p = procfs::read_process_cached(pid, &mut cache);
            if p.is_none() {
                gone.insert(pid);
            }
            p
        });
        pid_list.gone(&gone);
        if n == 1 {
            // What could not be read for lack of permission, said once (docs/snapshot.md,
            // "Reduced privileges"); what no capability of ours would lift is only noted.
            for l in crate::access::check(&samples) {
                if l.grantable {
                    warn!("{}", l.message());
                } else {
                    log::info!("{}", l.message());
                }
            }
        }
        let now = procfs::monotonic_ns();
        // Memory moves slowly next to waits: sampled every MEM_EVERY scans, and not for a
        // process served whole from the cache (it has not run since; it is sampled again on
        // its periodic full read).
        let mem = if n % MEM_EVERY == 1 {
            samples
                .values()
                .filter(|p| !p.is_kernel_thread() && !cache.served_whole(p.pid))
                .filter_map(|p| crate::memory::sample(p.pid, now).map(|m| (p.pid, m)))
                .collect()
        } else {
            std::collections::HashMap::new()
        };
        // Where the memory is, for the few processes holding enough of it (docs/memory.md).
        if !mem.is_empty() {
            let anon = mem.iter().map(|(&pid, m)| (pid, m.rss_anon)).collect();
            let layouts =
                layout_cache.layouts(now, &anon, &retain_cfg, crate::memory_layout::read_layout);
            if tx.blocking_send(Input::MemLayouts(layouts)).is_err() {
                return;
            }
        }
        if let Some(g) = gatherer.as_mut() {
            let min_for = |p: &procfs::ProcessSample| stacks.min_blocked_for(&filter, p);
            let found =
                g.gather_samples(&samples, &offsets, now, &min_for, crate::stacks::LIVE_BUDGET);
            if tx.blocking_send(Input::Stacks(found)).is_err() {
                return;
            }
        }
        // What the scanner served whole is sent by pid only: the aggregator has its sample.
        unchanged.extend(samples.keys().copied().filter(|&p| cache.served_whole(p)));
        for pid in &unchanged {
            samples.remove(pid);
        }
        if n % 30 == 1 {
            log::debug!(
                "scan: {} processes read, {} served whole, {} threads from the cache",
                samples.len(),
                unchanged.len(),
                cache.hits
            );
        }
        let input = Input::Scan {
            now_mono_ns: now,
            samples,
            unchanged,
            mem,
            clock_offsets: offsets,
            uptime_secs: procfs::uptime_secs(),
        };
        if tx.blocking_send(input).is_err() {
            return;
        }
        if n.is_multiple_of(5) {
            // Each scan allocates a fresh picture of every thread and the aggregator frees the
            // previous one; hand the freed pages back instead of letting the heap keep its peak.
            // (glibc only: musl's allocator returns freed pages by itself.)
            // SAFETY: malloc_trim has no preconditions.
            #[cfg(target_env = "gnu")]
            unsafe {
                libc::malloc_trim(0)
            };
        }
        std::thread::sleep(interval.saturating_sub(start.elapsed()));
    }
}

/// What the kernel knew about an OOM kill when it happened: the tracepoint record merged with
/// the kernel log lines printed just before it (constraint, memcg, the limit of the cgroup that
/// hit it) and, failing those, the victim's cgroup and its limit read now.
pub fn oom_context(victim: &OomVictimEvent, known_cgroup: Option<&str>) -> OomKill {
    let live = OomKill::from_tracepoint(victim);
    let log = kmsg::read_kmsg_history();
    let mut k = merge_kills(vec![live.clone()], log)
        .into_iter()
        .rev()
        .find(|k| k.host_pid == victim.host_pid)
        .unwrap_or(live);
    // The kernel log rate-limits its OOM reports (10 per 5 s): in a storm most kills have no
    // `oom-kill:` line. The probe read the victim's cgroup when the kernel chose it.
    cgroup::apply_victim_memcg(&mut k, victim.memcg_id);
    if k.memory_limit_bytes.is_none()
        && let Some(oom_memcg) = k.oom_memcg.as_deref()
    {
        k.memory_limit_bytes = cgroup::effective_memory_limit(oom_memcg);
    }
    if k.cgroup.is_none() {
        k.cgroup = known_cgroup.map(str::to_string).or_else(|| {
            std::fs::read_to_string(format!("/proc/{}/cgroup", victim.pid))
                .ok()
                .map(|s| procfs::parse_cgroup(&s))
        });
    }
    if k.memory_limit_bytes.is_none() {
        k.memory_limit_bytes = k.cgroup.as_deref().and_then(cgroup::effective_memory_limit);
    }
    k
}

/// The real world for the aggregator: /proc and the processes' memory. `quiet` keeps, from
/// one analysis pass to the next, what cannot change while a process does not run.
#[derive(Default)]
pub struct ProcEnv {
    quiet: std::sync::Mutex<crate::sources::quiet::QuietCache>,
}

impl aggregator::Env for ProcEnv {
    fn task_view(&self, pid: i32) -> Box<dyn TaskView> {
        Box::new(ProcTask { pid })
    }
    fn facts(
        &self,
        procs: &[crate::model::Process],
        oom_kills: Vec<crate::model::facts::OomFact>,
    ) -> crate::model::facts::Facts {
        // The aggregator is the only caller; the lock is never contended.
        let mut quiet = self.quiet.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::sources::facts::gather_with(
            procs,
            &|pid| Box::new(ProcTask { pid }),
            oom_kills,
            &mut quiet,
        )
    }
}

/// Fewer glibc malloc arenas: live mode has a handful of threads that pass large short-lived
/// values (a scan of every thread) to each other; one arena per thread multiplies the memory
/// kept around for nothing.
fn limit_malloc_arenas() {
    // (glibc only: musl's allocator has no per-thread arenas.)
    // SAFETY: mallopt only changes allocator tuning; called before the worker threads start.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2)
    };
}

/// Starts the probes and the collectors; returns the aggregator and its input.
fn start(
    opts: &Options,
) -> Result<(Aggregator, mpsc::Receiver<Input>, std::sync::Arc<std::sync::atomic::AtomicU64>), Error>
{
    for &pid in &opts.filter.pids {
        if !procfs::process_exists(pid) {
            return Err(Error::NoSuchPid(pid));
        }
    }
    limit_malloc_arenas();
    let threshold_ns = opts.filter.min_blocked_ns.max(10_000_000);
    let probes = Probes::load(&LoadOptions {
        wait_threshold_ns: threshold_ns,
        filter_tgid: opts.filter.single_pid().map_or(0, |p| p as u32),
        exact_memory: opts.exact_memory,
    })?;
    let agg = Aggregator::new(
        Config {
            filter: opts.filter.clone(),
            exit_grace_ns: opts.keep_exited.as_nanos() as u64,
            max_events: 500,
            max_oom: 100,
            ticks_per_sec: procfs::clock_ticks(),
        },
        probes.status.clone(),
    );
    let mut agg = agg;
    agg.set_hung_after(opts.hung_after.as_nanos() as u64);
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let offsets = std::sync::Arc::new(SharedOffsets::new(probes.clock_offsets()));
    let (ptx, interval, pids) = (tx.clone(), opts.interval, opts.filter.pids.clone());
    let wakes = std::sync::Arc::new(WakeLog::default());
    let trust_ns = probes
        .status
        .iter()
        .any(|p| p.attached && p.name.starts_with("tp_btf/sched_waking"))
        .then_some(threshold_ns);
    let (scan_wakes, scan_offsets) = (wakes.clone(), offsets.clone());
    let stacks = (opts.stacks, opts.filter.clone());
    std::thread::Builder::new()
        .name("proc-scan".into())
        .spawn(move || {
            proc_collector(ptx, interval, pids, scan_offsets, scan_wakes, trust_ns, stacks)
        })
        .map_err(|e| Error::Unsupported(format!("cannot start the /proc scanner: {e}")))?;
    for p in probes.status.iter().filter(|p| !p.attached) {
        warn!(
            "probe {} not attached: {} ({})",
            p.name,
            p.reason.as_deref().unwrap_or("?"),
            p.impact
        );
    }
    tokio::spawn(kernel_collector(probes, tx, dropped.clone(), (wakes, offsets)));
    Ok((agg, rx, dropped))
}

/// One record of the live stream (`hangwatch --json`), before it is rendered
/// (`output::json::stream`).
#[derive(Debug)]
pub enum StreamItem<'a> {
    /// What the aggregator said, with what the runner adds to it.
    Output(&'a Output, &'a Extra),
    /// Records lost since the last such item: the kernel's ring buffer was full, or the
    /// aggregator's input queue was closed on them.
    Lost { ts_mono_ns: u64, count: u64 },
}

/// Facts the stream adds that the aggregator's output does not carry.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// An OOM kill's cgroup, constraint and limit (see [`oom_context`]).
    pub oom_cgroup: Option<String>,
    pub oom_constraint: Option<String>,
    pub memory_limit_bytes: Option<u64>,
    pub dropped_records: u64,
    pub processes_tracked: usize,
}

/// `hangwatch --json`: runs the aggregator and hands each record to `emit` (which writes it as
/// a JSON line) until SIGINT/SIGTERM (`Ok`, also while the output is stalled: see
/// [`crate::signals`]) or until `emit` fails (a closed pipe).
pub async fn run_stream(
    opts: Options,
    mut emit: impl FnMut(StreamItem<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // Before the probes load (which takes a while): a signal sent meanwhile is acted on.
    let mut stop = crate::signals::StopSignals::install()?;
    let (mut agg, mut rx, dropped) = start(&opts)?;
    let mut last_stats = 0u64;
    let mut dropped_reported = 0u64;
    let mut kernel_lost_reported = 0u64;
    let env = ProcEnv::default();
    loop {
        let input = tokio::select! {
            i = rx.recv() => match i { Some(i) => i, None => return Ok(()) },
            _ = stop.requested() => return Ok(()),
        };
        let is_stats = matches!(input, Input::Health { .. });
        // Records the kernel could not write (ring buffer full) since the last report.
        if let Input::Health { kernel, now_mono_ns, .. } = &input
            && kernel.lost_events > kernel_lost_reported
        {
            emit(StreamItem::Lost {
                ts_mono_ns: *now_mono_ns,
                count: kernel.lost_events - kernel_lost_reported,
            })?;
            kernel_lost_reported = kernel.lost_events;
        }
        let outputs = agg.handle(input, &env);
        for o in outputs {
            let mut extra = Extra {
                dropped_records: dropped.load(std::sync::atomic::Ordering::Relaxed),
                processes_tracked: agg.tracked(),
                ..Default::default()
            };
            if let Output::Stats { ts_mono_ns, .. } = &o {
                if !is_stats
                    || ts_mono_ns.saturating_sub(last_stats) < opts.stats_every.as_nanos() as u64
                {
                    continue;
                }
                last_stats = *ts_mono_ns;
            }
            if let Output::OomKill { victim, process, .. } = &o {
                let k = match &victim.context {
                    Some(k) => (**k).clone(),
                    None => oom_context(victim, process.as_ref().map(|p| p.cgroup.as_str())),
                };
                extra.oom_cgroup = k.cgroup;
                extra.oom_constraint = Some(k.constraint);
                extra.memory_limit_bytes = k.memory_limit_bytes;
            }
            emit(StreamItem::Output(&o, &extra))?;
        }
        // Records dropped between the collectors and here since the last report.
        let dropped_now = dropped.load(std::sync::atomic::Ordering::Relaxed);
        if dropped_now > dropped_reported {
            emit(StreamItem::Lost {
                ts_mono_ns: procfs::monotonic_ns(),
                count: dropped_now - dropped_reported,
            })?;
            dropped_reported = dropped_now;
        }
        debug!("tracked {}", agg.tracked());
    }
}

/// What live mode publishes to a view (the terminal UI) about once a second.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub view: std::sync::Arc<aggregator::View>,
    /// Kernel records dropped because the aggregator's queue was full.
    pub dropped_records: u64,
}

/// `hangwatch` on a terminal: the aggregator runs here and publishes its view about once a
/// second (after each scan, and within a second of any other input) to the view task that
/// `ui` starts (the terminal UI, which owns the terminal and the keyboard). Returns when that
/// task ends (q, Ctrl-C, SIGINT, SIGTERM).
pub async fn run_published<F>(
    opts: Options,
    ui: impl FnOnce(tokio::sync::watch::Receiver<Update>) -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    use std::sync::{Arc, atomic::Ordering};

    let (mut agg, mut rx, dropped) = start(&opts)?;
    let publish = |agg: &Aggregator| Update {
        view: Arc::new(agg.view()),
        dropped_records: dropped.load(Ordering::Relaxed),
    };
    let (tx, updates) = tokio::sync::watch::channel(publish(&agg));
    let mut ui = tokio::spawn(ui(updates));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = false;
    let env = ProcEnv::default();
    let result = loop {
        tokio::select! {
            r = &mut ui => break match r {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(anyhow::anyhow!("the terminal UI panicked")),
                Err(e) => Err(e.into()),
            },
            i = rx.recv() => match i {
                Some(input) => {
                    let scan = matches!(input, Input::Scan { .. });
                    agg.handle(input, &env);
                    dirty = true;
                    if scan {
                        tx.send_replace(publish(&agg));
                        dirty = false;
                    }
                }
                None => break Err(anyhow::anyhow!("the collectors stopped")),
            },
            _ = tick.tick() => if dirty {
                tx.send_replace(publish(&agg));
                dirty = false;
            },
        }
    };
    // Whatever ended the loop, the UI hands the terminal back before we return.
    if !ui.is_finished() {
        ui.abort();
        let _ = ui.await;
    }
    result
}
