// No `unwrap()`/`expect()` on a runtime path: a bad value is an error, never a panic.
#![deny(clippy::unwrap_used, clippy::expect_used)]
use std::{
    io::{self, IsTerminal as _, Write as _},
    process::ExitCode,
};

use clap::Parser as _;
use hangwatch::{
    cli::{Cli, Command},
    error::Error,
    live, output, privileges, snapshot, tui,
};

fn main() -> ExitCode {
    // Before anything opens a file: a closed stdout must not be reused by one.
    let stdout_closed = hangwatch::stdio::ensure_standard_fds();
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line, naming the bad value (clap's first line), then a hint.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("hangwatch: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if cli.json && cli.command.is_none() {
        // Held pending until live mode's handler is in place (see hangwatch::signals).
        hangwatch::signals::block_stop_signals();
    }
    if let Err(e) = reconcile_top_level_flags(&mut cli) {
        eprintln!("hangwatch: {e}");
        return ExitCode::from(e.exit_code());
    }
    if stdout_closed && (cli.json || cli.command.is_some()) {
        // Like a reader that went away before the first line: nothing to write to, not an error.
        return ExitCode::SUCCESS;
    }
    let mut logger = env_logger::Builder::new();
    logger.filter_level(cli.log_level).format_timestamp(None);
    if cli.command.is_none() && !cli.json && io::stdout().is_terminal() {
        // The terminal UI owns the terminal: diagnostics go to a file, or nowhere.
        match hangwatch::tui::open_log_file() {
            Some(file) => {
                logger.target(env_logger::Target::Pipe(Box::new(file))).format(|buf, r| {
                    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
                    writeln!(buf, "{now} {} {}: {}", r.level(), r.target(), r.args())
                });
            }
            None => {
                for r in hangwatch::tui::log_refused() {
                    eprintln!("hangwatch: warning: not logging to {r}");
                }
                eprintln!("hangwatch: warning: no private log file: diagnostics are dropped");
                logger.filter_level(log::LevelFilter::Off);
            }
        }
    }
    logger.init();
    if hangwatch::tui::log_path().is_some() {
        for r in hangwatch::tui::log_refused() {
            log::warn!("not logging to {r}");
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The reader of stdout went away (`| head`), also inside the JSON serializer.
            if hangwatch::stdio::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            if let Some(err) = e.downcast_ref::<Error>() {
                eprintln!("hangwatch: {err}");
                return ExitCode::from(err.exit_code());
            }
            eprintln!("hangwatch: {}", hangwatch::stdio::describe(&e));
            ExitCode::from(1)
        }
    }
}

/// `hangwatch --json snapshot` is `hangwatch snapshot --json`; the live mode's filters given
/// before `snapshot` would be ignored, so they are refused with where to put them.
fn reconcile_top_level_flags(cli: &mut Cli) -> Result<(), Error> {
    let Some(Command::Snapshot(a)) = &mut cli.command else { return Ok(()) };
    a.json |= cli.json;
    let misplaced = [
        (!cli.filter.pids.is_empty(), "--pid"),
        (cli.filter.comm.is_some(), "--comm"),
        (cli.filter.cgroup.is_some(), "--cgroup"),
        (cli.exact_memory, "--exact-memory"),
    ];
    if let Some((_, flag)) = misplaced.iter().find(|(set, _)| *set) {
        return Err(Error::Usage(format!(
            "{flag} is given before `snapshot`, where it applies to live mode: put it after (hangwatch snapshot {flag} ...)"
        )));
    }
    Ok(())
}

/// Thread ids given to --pid become their process, with a note on stderr.
fn resolve_pids(pids: &mut Vec<i32>) {
    for note in hangwatch::pids::resolve_thread_ids(pids) {
        eprintln!("hangwatch: note: {note}");
    }
}

fn run(mut cli: Cli) -> anyhow::Result<()> {
    hangwatch::stdio::ensure_open_file_limit()?;
    if let Some(path) = &cli.btf {
        hangwatch::probes::offsets::set_btf_path(path)?;
    }
    match cli.command {
        Some(Command::Snapshot(mut a)) => {
            privileges::check()?;
            resolve_pids(&mut a.filter.pids);
            let report = snapshot::run(&snapshot::Options {
                window: a.window,
                filter: a.filter.filter(),
                all: a.all,
                hung_after: a.hung_after,
                exact_memory: a.exact_memory,
                stacks: a.stack_mode(),
            })?;
            hangwatch::stdio::writing_stdout(|| {
                let mut out = io::stdout().lock();
                if a.json {
                    hangwatch::escape::json_to_writer(
                        &mut out,
                        &output::json::snapshot::snapshot_json(&report),
                    )?;
                    out.write_all(b"\n")?;
                } else {
                    let limit = if a.all || !a.filter.pids.is_empty() {
                        usize::MAX
                    } else {
                        output::human::DEFAULT_LIMIT
                    };
                    out.write_all(output::human::render(&report, limit).as_bytes())?;
                }
                out.flush()?;
                Ok(())
            })
        }
        None => {
            resolve_pids(&mut cli.filter.pids);
            let filter = cli.filter.filter();
            let opts = live::Options {
                interval: cli.interval,
                stats_every: std::time::Duration::from_secs(10),
                hung_after: cli.hung_after,
                keep_exited: cli.keep_exited,
                exact_memory: cli.exact_memory,
                // Node-wide, stacks are opt-in (--live-stacks): their cost in CPU under heavy
                // churn and in memory (symbolizing every idle daemon's modules: the churn
                // test's RSS went from 22 to 60 MiB with the long waits of small idle
                // processes read); narrowed to some processes, on unless --no-stacks.
                stacks: if cli.live_stacks || (!cli.no_stacks && filter.is_narrowed()) {
                    hangwatch::live::LiveStacks::Followed
                } else {
                    hangwatch::live::LiveStacks::Off
                },
                filter,
            };
            if !cli.json && !io::stdout().is_terminal() {
                return Err(Error::Usage(
                    "stdout is not a terminal: use --json for a JSON Lines stream, or `hangwatch snapshot`".into(),
                )
                .into());
            }
            if !cli.json && std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
                return Err(Error::Usage(
                    "TERM=dumb: this terminal cannot show the live UI; use `hangwatch snapshot` or `hangwatch --json`".into(),
                )
                .into());
            }
            privileges::check()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            if cli.json {
                rt.block_on(live::run_stream(opts, json_lines()))
            } else {
                rt.block_on(live::run_published(opts, |updates| {
                    tui::run(updates, tui::HostInfo::read(), tui::log_path())
                }))
            }
        }
    }
}

/// `hangwatch --json`: each record of the live stream as one JSON line on stdout.
fn json_lines() -> impl FnMut(live::StreamItem<'_>) -> anyhow::Result<()> {
    let mut out = io::LineWriter::new(io::stdout().lock());
    let clock = output::json::stream::Clock::now();
    move |item| {
        let rec = output::json::stream::record(&item, &clock);
        hangwatch::escape::json_to_writer(&mut out, &rec)?;
        out.write_all(b"\n")?;
        Ok(())
    }
}
