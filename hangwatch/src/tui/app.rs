//! Widget and application state of the terminal UI, and what each key does. No drawing here:
//! the panels read this state.
//!
//! # Stable ranking
//!
//! The aggregator ranks processes afresh on every scan, and scores move a little every second
//! (CPU, wait lengths). Drawn as is, rows would jump about. The table therefore keeps its own
//! order and changes it with hysteresis:
//!
//! * processes keep their place from the previous refresh; new ones are appended;
//! * then one insertion pass moves a row above the one before it only while its sort score
//!   beats that row's by more than the sort key's margin ([`SortKey::margin`]: 0.5 suspicion
//!   points, 2 s of wait, 5 points of CPU %, 5 % of RSS, exact for pids);
//! * so two rows whose scores differ by less than the margin never swap, while a process that
//!   becomes clearly worse still rises to its place on the next refresh;
//! * choosing another sort (`s`) sorts exactly once, without the margin.
//!
//! The selection follows its process (by pid) through reorders once the user has moved it;
//! before that it stays on the top row. If the selected process leaves the list, the row at the
//! same position is selected.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::PathBuf,
    time::Duration,
};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::live::Update;
use crate::{
    analysis::Finding,
    live::aggregator::{ProcessRow, View},
};

/// Memory points kept per process for the detail chart (one per refresh: 5 minutes at 1 s).
pub const HISTORY_POINTS: usize = 300;

/// One point of a process's memory history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemPoint {
    t: u64,
    rss: u64,
    /// Heap held (`[heap]` size), when the process's memory had been sampled.
    heap: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel: String,
}

impl HostInfo {
    /// Reads the host name and kernel release from /proc.
    pub fn read() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
        };
        HostInfo {
            hostname: read("/proc/sys/kernel/hostname"),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Suspicion,
    LongestWait,
    Cpu,
    Rss,
    Pid,
}

impl SortKey {
    pub const ALL: [SortKey; 5] =
        [SortKey::Suspicion, SortKey::LongestWait, SortKey::Cpu, SortKey::Rss, SortKey::Pid];

    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|&k| k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Suspicion => "suspicion",
            SortKey::LongestWait => "longest wait",
            SortKey::Cpu => "CPU",
            SortKey::Rss => "RSS",
            SortKey::Pid => "pid",
        }
    }

    /// Higher sorts first.
    pub fn score(self, row: &ProcessRow) -> f64 {
        let p = &row.process;
        match self {
            SortKey::Suspicion => p.suspicion(),
            SortKey::LongestWait => {
                p.longest_wait().map_or(0.0, |(_, w)| w.duration_ns as f64 / 1e9)
            }
            SortKey::Cpu => p.cpu_percent,
            SortKey::Rss => (p.rss_bytes.max(1) as f64).ln(),
            SortKey::Pid => -f64::from(p.pid),
        }
    }

    /// How much a row's score must beat the one above it before the two swap.
    pub fn margin(self) -> f64 {
        match self {
            SortKey::Suspicion => 0.5,
            SortKey::LongestWait => 2.0,
            SortKey::Cpu => 5.0,
            // ln(1.05): 5 % more RSS.
            SortKey::Rss => 0.048_79,
            SortKey::Pid => 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Table,
    /// The detail view of one process, by pid.
    Detail(i32),
}

pub struct App {
    pub host: HostInfo,
    /// Where diagnostics go while the UI runs (shown in the help overlay).
    pub log_path: Option<PathBuf>,
    /// How long hangwatch has been running.
    pub uptime: Duration,
    pub mode: Mode,
    /// The `?` overlay is open.
    pub help: bool,
    pub quit: bool,
    sort: SortKey,
    paused: bool,
    /// What is drawn.
    shown: Update,
    /// The newest update received while paused.
    latest: Option<Update>,
    /// Display order of every process of `shown` (unfiltered), as indexes into its rows.
    order: Vec<usize>,
    /// The same order as pids: what the next refresh starts from.
    order_pids: Vec<i32>,
    /// `order` filtered: the table's rows.
    rows: Vec<usize>,
    filter: Option<String>,
    /// The filter being typed after `/`.
    editing: Option<String>,
    /// Table cursor (index into `rows`) and the process it is on.
    cursor: usize,
    selected: Option<i32>,
    /// Whether the user moved the cursor: then it follows its process, else it stays on top.
    follow: bool,
    /// First table row drawn.
    offset: usize,
    /// Table rows that fit on screen; detail lines that fit.
    page: usize,
    detail_page: usize,
    detail_scroll: usize,
    /// The detail view shows whole stacks (`t`).
    whole_stacks: bool,
    /// RSS and heap per pid, oldest first, at most [`HISTORY_POINTS`].
    history: HashMap<i32, VecDeque<MemPoint>>,
    /// For each pid a finding names: the index (in the shown view's findings) of its most
    /// severe one.
    worst: HashMap<i32, usize>,
}

impl App {
    pub fn new(host: HostInfo) -> Self {
        App {
            host,
            log_path: None,
            uptime: Duration::ZERO,
            mode: Mode::Table,
            help: false,
            quit: false,
            sort: SortKey::Suspicion,
            paused: false,
            shown: Update::default(),
            latest: None,
            order: Vec::new(),
            order_pids: Vec::new(),
            rows: Vec::new(),
            filter: None,
            editing: None,
            cursor: 0,
            selected: None,
            follow: false,
            offset: 0,
            page: 10,
            detail_page: 10,
            detail_scroll: 0,
            whole_stacks: false,
            history: HashMap::new(),
            worst: HashMap::new(),
        }
    }

    // ----- reading -------------------------------------------------------------------------

    pub fn view(&self) -> &View {
        &self.shown.view
    }

    pub fn dropped_records(&self) -> u64 {
        self.shown.dropped_records
    }

    pub fn sort(&self) -> SortKey {
        self.sort
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn filter(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    /// The filter being typed, if the prompt is open.
    pub fn editing(&self) -> Option<&str> {
        self.editing.as_deref()
    }

    /// Number of rows in the table (after the filter).
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn detail_scroll(&self) -> usize {
        self.detail_scroll
    }

    pub fn selected_pid(&self) -> Option<i32> {
        self.rows.get(self.cursor).map(|&i| self.shown.view.processes[i].process.pid)
    }

    /// The table's rows in display order.
    pub fn rows(&self) -> impl Iterator<Item = &ProcessRow> {
        self.rows.iter().map(|&i| &self.shown.view.processes[i])
    }

    /// The rows that fit on screen: (row number, row).
    pub fn visible_rows(&self) -> impl Iterator<Item = (usize, &ProcessRow)> {
        self.rows().enumerate().skip(self.offset).take(self.page)
    }

    pub fn process(&self, pid: i32) -> Option<&ProcessRow> {
        self.shown.view.processes.iter().find(|r| r.process.pid == pid)
    }

    fn mem_history(&self, pid: i32) -> impl Iterator<Item = MemPoint> + '_ {
        let now = self.shown.view.now_mono_ns;
        self.history.get(&pid).into_iter().flatten().copied().filter(move |p| p.t <= now)
    }

    /// RSS history of `pid` up to the shown view's time (a paused view shows no newer points):
    /// (monotonic ns, bytes), oldest first.
    pub fn rss_history(&self, pid: i32) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.mem_history(pid).map(|p| (p.t, p.rss))
    }

    /// Heap history of `pid`, like [`App::rss_history`]; only the points taken once its memory
    /// had been sampled.
    pub fn heap_history(&self, pid: i32) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.mem_history(pid).filter_map(|p| p.heap.map(|h| (p.t, h)))
    }

    /// The open findings that name `pid`, most severe first.
    pub fn findings_of(&self, pid: i32) -> impl Iterator<Item = &Finding> + '_ {
        self.shown.view.findings.iter().filter(move |f| f.pids.contains(&pid))
    }

    /// The most severe open finding that names `pid` (the first of the most severe ones).
    pub fn worst_finding(&self, pid: i32) -> Option<&Finding> {
        self.worst.get(&pid).and_then(|&i| self.shown.view.findings.get(i))
    }

    // ----- updates -------------------------------------------------------------------------

    /// A new view from the aggregator. While paused it is kept, not shown.
    pub fn update(&mut self, u: Update) {
        // Names, command lines, paths and findings are escaped here, once, for every panel.
        let u = super::sanitize::update(u);
        self.record_history(&u.view);
        if self.paused {
            self.latest = Some(u);
        } else {
            self.show(u);
        }
    }

    fn show(&mut self, u: Update) {
        let first = self.order.is_empty();
        self.shown = u;
        self.index_findings();
        self.reorder(first);
        self.refilter();
    }

    fn index_findings(&mut self) {
        self.worst.clear();
        let findings = &self.shown.view.findings;
        for (i, f) in findings.iter().enumerate() {
            for &pid in &f.pids {
                let e = self.worst.entry(pid).or_insert(i);
                if findings[*e].severity < f.severity {
                    *e = i;
                }
            }
        }
    }

    fn record_history(&mut self, view: &View) {
        let live: HashSet<i32> = view.processes.iter().map(|r| r.process.pid).collect();
        self.history.retain(|pid, _| live.contains(pid));
        for r in view.processes.iter().filter(|r| !r.exited) {
            let h = self.history.entry(r.process.pid).or_default();
            if h.back().is_some_and(|p| p.t >= view.now_mono_ns) {
                continue;
            }
            if h.len() >= HISTORY_POINTS {
                h.pop_front();
            }
            h.push_back(MemPoint {
                t: view.now_mono_ns,
                rss: r.process.rss_bytes,
                heap: r.process.memory.map(|m| m.heap),
            });
        }
    }

    /// Recomputes `order` for the shown view: exactly when `full`, else with hysteresis (see
    /// the module documentation).
    fn reorder(&mut self, full: bool) {
        let procs = &self.shown.view.processes;
        let key = self.sort;
        let scores: Vec<f64> = procs.iter().map(|r| key.score(r)).collect();
        let mut order: Vec<usize>;
        if full {
            order = (0..procs.len()).collect();
            // Ties keep the aggregator's rank.
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        } else {
            let index: HashMap<i32, usize> =
                procs.iter().enumerate().map(|(i, r)| (r.process.pid, i)).collect();
            let old_pids = std::mem::take(&mut self.order_pids);
            let mut placed = vec![false; procs.len()];
            order = Vec::with_capacity(procs.len());
            for pid in old_pids {
                if let Some(&i) = index.get(&pid)
                    && !placed[i]
                {
                    placed[i] = true;
                    order.push(i);
                }
            }
            order.extend((0..procs.len()).filter(|&i| !placed[i]));
            let margin = key.margin();
            for i in 1..order.len() {
                let mut j = i;
                while j > 0 && scores[order[j]] > scores[order[j - 1]] + margin {
                    order.swap(j, j - 1);
                    j -= 1;
                }
            }
        }
        self.order = order;
        self.order_pids = self.order.iter().map(|&i| procs[i].process.pid).collect();
    }

    /// Applies the filter to `order`, then puts the cursor back on its process.
    fn refilter(&mut self) {
        let procs = &self.shown.view.processes;
        let f = self.filter.as_deref().map(Matcher::new);
        self.rows = self
            .order
            .iter()
            .copied()
            .filter(|&i| f.as_ref().is_none_or(|f| f.matches(&procs[i])))
            .collect();
        let found = if self.follow {
            self.selected
                .and_then(|pid| self.rows.iter().position(|&i| procs[i].process.pid == pid))
        } else {
            None
        };
        self.cursor = match found {
            Some(pos) => pos,
            None if self.follow => self.cursor.min(self.rows.len().saturating_sub(1)),
            None => 0,
        };
        self.selected = self.selected_pid();
        self.scroll_to_cursor();
    }

    /// Table rows that fit on screen in this frame.
    pub fn set_table_page(&mut self, rows: usize) {
        self.page = rows.max(1);
        self.scroll_to_cursor();
    }

    /// Detail lines that fit on screen in this frame.
    pub fn set_detail_page(&mut self, lines: usize) {
        self.detail_page = lines.max(1);
    }

    fn scroll_to_cursor(&mut self) {
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + self.page {
            self.offset = self.cursor + 1 - self.page;
        }
        self.offset = self.offset.min(self.rows.len().saturating_sub(self.page));
    }

    fn move_cursor(&mut self, delta: isize) {
        if self.rows.is_empty() {
            return;
        }
        let last = self.rows.len() - 1;
        self.cursor = self.cursor.saturating_add_signed(delta).min(last);
        self.selected = self.selected_pid();
        self.follow = true;
        self.scroll_to_cursor();
    }

    pub fn set_sort(&mut self, key: SortKey) {
        self.sort = key;
        self.reorder(true);
        self.refilter();
    }

    /// Sets (or with `None` clears) the filter.
    pub fn set_filter(&mut self, f: Option<String>) {
        self.filter = f.filter(|s| !s.is_empty());
        self.refilter();
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused && let Some(u) = self.latest.take() {
            self.show(u);
        }
    }

    // ----- keys ----------------------------------------------------------------------------

    pub fn on_key(&mut self, k: KeyEvent) {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            self.quit = true;
            return;
        }
        if let Some(text) = self.editing.as_mut() {
            match k.code {
                KeyCode::Enter => {
                    let f = self.editing.take();
                    self.set_filter(f);
                }
                KeyCode::Esc => {
                    self.editing = None;
                    self.set_filter(None);
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if !ctrl => text.push(c),
                _ => {}
            }
            return;
        }
        if self.help {
            match k.code {
                KeyCode::Char('q') => self.quit = true,
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => self.help = false,
                _ => {}
            }
            return;
        }
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('p') | KeyCode::Char(' ') => self.set_paused(!self.paused),
            _ => match self.mode {
                Mode::Table => self.table_key(k.code),
                Mode::Detail(_) => self.detail_key(k.code),
            },
        }
    }

    fn table_key(&mut self, code: KeyCode) {
        let page = self.page as isize;
        match code {
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.move_cursor(-page),
            KeyCode::PageDown => self.move_cursor(page),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_cursor(isize::MAX / 2),
            KeyCode::Enter => {
                if let Some(pid) = self.selected_pid() {
                    self.selected = Some(pid);
                    self.follow = true;
                    self.mode = Mode::Detail(pid);
                    self.detail_scroll = 0;
                }
            }
            KeyCode::Char('/') => self.editing = Some(self.filter.clone().unwrap_or_default()),
            KeyCode::Esc => self.set_filter(None),
            KeyCode::Char('s') => self.set_sort(self.sort.next()),
            _ => {}
        }
    }

    fn detail_key(&mut self, code: KeyCode) {
        let page = self.detail_page;
        match code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => {
                self.mode = Mode::Table
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.detail_scroll = self.detail_scroll.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => self.detail_scroll += 1,
            KeyCode::PageUp => self.detail_scroll = self.detail_scroll.saturating_sub(page),
            KeyCode::PageDown => self.detail_scroll += page,
            KeyCode::Home | KeyCode::Char('g') => self.detail_scroll = 0,
            KeyCode::Char('t') => self.whole_stacks = !self.whole_stacks,
            _ => {}
        }
    }

    /// Whether the detail view shows whole stacks (`t`) rather than each thread's frame.
    pub fn whole_stacks(&self) -> bool {
        self.whole_stacks
    }

    /// The detail panel clamps the scroll to what it has to show.
    pub fn clamp_detail_scroll(&mut self, lines: usize) {
        self.detail_scroll = self.detail_scroll.min(lines.saturating_sub(self.detail_page));
    }
}

/// The `/` filter: a case-insensitive substring of comm or cgroup, or a pid prefix.
struct Matcher {
    needle: String,
    digits: bool,
}

impl Matcher {
    fn new(s: &str) -> Self {
        let needle = s.trim().to_lowercase();
        let digits = !needle.is_empty() && needle.bytes().all(|b| b.is_ascii_digit());
        Matcher { needle, digits }
    }

    fn matches(&self, r: &ProcessRow) -> bool {
        let p = &r.process;
        (self.digits && p.pid.to_string().starts_with(&self.needle))
            || p.comm.to_lowercase().contains(&self.needle)
            || p.cgroup.to_lowercase().contains(&self.needle)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::tui::testing::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn push(app: &mut App, v: View) {
        app.update(Update { view: Arc::new(v), dropped_records: 0 });
    }

    fn pids(app: &App) -> Vec<i32> {
        app.rows().map(|r| r.process.pid).collect()
    }

    /// A process blocked `secs` in futex whose score is set through its CPU history.
    fn blocked(pid: i32, comm: &str, cpu_total: f64) -> ProcessRow {
        let w = wait("futex", "futex(...)", 600, true, "futex_wait_queue");
        let mut p = service(pid, comm, vec![thread(pid, comm, Some(w))]);
        p.cpu_total_secs = cpu_total;
        row(p)
    }

    #[test]
    fn selection_follows_pid_across_rerank() {
        // 10 > 20 > 30 clearly apart.
        let v = view(vec![blocked(10, "a", 100.0), blocked(20, "b", 0.3), idle(30)]);
        let mut app = app_with(v);
        assert_eq!(pids(&app), vec![10, 20, 30]);
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.selected_pid(), Some(20));
        // 30 becomes the worst by far, 10 goes idle: the cursor stays on pid 20.
        let v = view(vec![idle(10), blocked(20, "b", 0.3), blocked(30, "c", 100.0)]);
        push(&mut app, v);
        assert_eq!(pids(&app)[0], 30, "{:?}", pids(&app));
        assert_eq!(app.selected_pid(), Some(20));
        assert_eq!(pids(&app)[app.cursor()], 20);
        // Its process gone: the row at the same place is selected.
        let pos = app.cursor();
        let v = view(vec![idle(10), blocked(30, "c", 100.0)]);
        push(&mut app, v);
        assert_eq!(app.cursor(), pos.min(1));
        assert!(app.selected_pid().is_some());
    }

    #[test]
    fn untouched_cursor_stays_on_top() {
        let mut app = app_with(view(vec![blocked(10, "a", 100.0), idle(20)]));
        assert_eq!(app.selected_pid(), Some(10));
        push(&mut app, view(vec![idle(10), blocked(20, "b", 100.0)]));
        assert_eq!(app.cursor(), 0);
        assert_eq!(app.selected_pid(), Some(20));
    }

    #[test]
    fn small_score_changes_do_not_reorder() {
        // 0.3 s and 0.5 s of CPU in their lives: scores less than 0.5 apart.
        let (a_low, a_high) = (blocked(10, "a", 0.3), blocked(10, "a", 0.5));
        let (b_low, b_high) = (blocked(20, "b", 0.3), blocked(20, "b", 0.5));
        let d = b_high.process.suspicion() - a_low.process.suspicion();
        assert!(d > 0.0 && d < 0.5, "{d}");
        let mut app = app_with(view(vec![b_high.clone(), a_low.clone()]));
        assert_eq!(pids(&app), vec![20, 10]);
        // Now a scores a little more than b, and the aggregator ranks it first: no swap.
        push(&mut app, view(vec![a_high.clone(), b_low.clone()]));
        assert_eq!(pids(&app), vec![20, 10]);
        // A clear difference does reorder.
        push(&mut app, view(vec![blocked(10, "a", 50.0), b_low]));
        assert_eq!(pids(&app), vec![10, 20]);
    }

    #[test]
    fn new_processes_find_their_place() {
        let mut app = app_with(view(vec![blocked(10, "a", 1.0), idle(20)]));
        push(&mut app, view(vec![blocked(30, "c", 100.0), blocked(10, "a", 1.0), idle(20)]));
        assert_eq!(pids(&app), vec![30, 10, 20]);
    }

    #[test]
    fn filter_by_comm_pid_and_cgroup() {
        let mut a = blocked(1234, "nginx", 1.0);
        a.process.cgroup = "/kubepods/pod1/cri-containerd-abc123.scope".into();
        let v = view(vec![a, blocked(42, "postgres", 1.0), idle(4321)]);
        let mut app = app_with(v);
        let typed = |app: &mut App, s: &str| {
            app.on_key(key(KeyCode::Char('/')));
            for c in s.chars() {
                app.on_key(key(KeyCode::Char(c)));
            }
        };
        typed(&mut app, "NGI");
        // Not applied until Enter; `q` while typing is text, not quit.
        assert_eq!(app.row_count(), 3);
        assert_eq!(app.editing(), Some("NGI"));
        app.on_key(key(KeyCode::Enter));
        assert_eq!(pids(&app), vec![1234]);
        assert_eq!(app.filter(), Some("NGI"));
        // Editing starts from the current filter.
        app.on_key(key(KeyCode::Char('/')));
        for _ in 0..3 {
            app.on_key(key(KeyCode::Backspace));
        }
        for c in "42".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter));
        assert_eq!(pids(&app), vec![42], "pid prefix");
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.filter(), None);
        assert_eq!(app.row_count(), 3);
        typed(&mut app, "abc123");
        app.on_key(key(KeyCode::Enter));
        assert_eq!(pids(&app), vec![1234], "cgroup");
        typed(&mut app, "q");
        assert!(!app.quit);
        app.on_key(key(KeyCode::Esc));
        // Esc in the table clears an applied filter too.
        typed(&mut app, "zzz");
        app.on_key(key(KeyCode::Enter));
        assert_eq!(app.row_count(), 0);
        assert_eq!(app.selected_pid(), None);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.row_count(), 3);
    }

    #[test]
    fn sort_cycles_through_every_key() {
        let mut big = idle(5);
        big.process.rss_bytes = 1 << 30;
        big.process.cpu_percent = 90.0;
        let v = view(vec![blocked(30, "a", 100.0), blocked(20, "b", 0.1), big]);
        let mut app = app_with(v);
        let mut seen = vec![app.sort()];
        assert_eq!(pids(&app)[0], 30);
        app.on_key(key(KeyCode::Char('s')));
        seen.push(app.sort());
        assert_eq!(app.sort(), SortKey::LongestWait);
        assert_eq!(*pids(&app).last().unwrap(), 5, "the idle one has no wait");
        app.on_key(key(KeyCode::Char('s')));
        seen.push(app.sort());
        assert_eq!(pids(&app)[0], 5, "CPU");
        app.on_key(key(KeyCode::Char('s')));
        seen.push(app.sort());
        assert_eq!(pids(&app)[0], 5, "RSS");
        app.on_key(key(KeyCode::Char('s')));
        seen.push(app.sort());
        assert_eq!(pids(&app), vec![5, 20, 30], "pid");
        app.on_key(key(KeyCode::Char('s')));
        assert_eq!(app.sort(), SortKey::Suspicion);
        assert_eq!(seen, SortKey::ALL.to_vec());
        assert_eq!(pids(&app)[0], 30);
    }

    #[test]
    fn pause_freezes_the_view() {
        let mut app = app_with(view(vec![blocked(10, "a", 1.0)]));
        app.on_key(key(KeyCode::Char('p')));
        assert!(app.paused());
        let mut v = view(vec![blocked(10, "a", 1.0), idle(20)]);
        v.now_mono_ns = NOW + SEC;
        push(&mut app, v);
        assert_eq!(pids(&app), vec![10], "paused: the new process is not shown");
        assert_eq!(app.view().now_mono_ns, NOW);
        assert_eq!(app.rss_history(10).count(), 1, "no point newer than the frozen view");
        app.on_key(key(KeyCode::Char('p')));
        assert!(!app.paused());
        assert_eq!(pids(&app), vec![10, 20]);
        assert_eq!(app.rss_history(10).count(), 2, "history was kept while paused");
    }

    #[test]
    fn history_is_bounded_and_forgets_gone_processes() {
        let mut app = app_with(view(vec![blocked(10, "a", 1.0)]));
        for i in 1..=(HISTORY_POINTS as u64 + 50) {
            let mut v = view(vec![blocked(10, "a", 1.0), idle(20)]);
            v.now_mono_ns = NOW + i * SEC;
            v.processes[0].process.rss_bytes = i;
            push(&mut app, v);
        }
        let h: Vec<_> = app.rss_history(10).collect();
        assert_eq!(h.len(), HISTORY_POINTS);
        assert_eq!(h.last().unwrap().1, HISTORY_POINTS as u64 + 50);
        let mut v = view(vec![idle(20)]);
        v.now_mono_ns = NOW + 1000 * SEC;
        push(&mut app, v);
        assert_eq!(app.rss_history(10).count(), 0);
    }

    #[test]
    fn keys_move_open_detail_and_quit() {
        let rows: Vec<ProcessRow> = (1..=100).map(|i| blocked(i, "x", f64::from(i))).collect();
        let mut app = app_with(view(rows));
        app.set_table_page(10);
        app.set_detail_page(10);
        app.on_key(key(KeyCode::PageDown));
        assert_eq!(app.cursor(), 10);
        assert_eq!(app.offset(), 1);
        app.on_key(key(KeyCode::Char('k')));
        assert_eq!(app.cursor(), 9);
        app.on_key(key(KeyCode::End));
        assert_eq!(app.cursor(), 99);
        assert_eq!(app.offset(), 90);
        app.on_key(key(KeyCode::PageUp));
        app.on_key(key(KeyCode::Home));
        assert_eq!((app.cursor(), app.offset()), (0, 0));
        let top = app.selected_pid().unwrap();
        app.on_key(key(KeyCode::Enter));
        assert_eq!(app.mode, Mode::Detail(top));
        app.on_key(key(KeyCode::Char('j')));
        assert_eq!(app.detail_scroll(), 1);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.mode, Mode::Table);
        app.on_key(key(KeyCode::Char('?')));
        assert!(app.help);
        app.on_key(key(KeyCode::Esc));
        assert!(!app.help);
        assert!(!app.quit);
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(app.quit);
        let mut app = app_with(view(vec![]));
        app.on_key(key(KeyCode::Char('q')));
        assert!(app.quit);
    }
}
