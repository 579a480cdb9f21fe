//! The terminal manager: raw mode and the alternate screen for as long as a [`TerminalGuard`]
//! lives. The terminal is restored when the guard drops (q, Ctrl-C, SIGTERM: the UI loop ends),
//! when it unwinds, and by a panic hook *before* the panic message is printed, so that the
//! message lands on a normal screen and stays readable.

use std::{
    io::{self, Stdout, Write as _},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
};

use crossterm::{
    cursor,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::{Terminal, backend::CrosstermBackend};

/// True while the UI owns the terminal (raw mode, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set once the terminal was handed back; a UI that sees it stops drawing.
static RESTORED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Takes the terminal: raw mode, alternate screen, hidden cursor; installs the panic hook.
    pub fn enter() -> io::Result<Self> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        RESTORED.store(false, Ordering::SeqCst);
        // From here on a failure restores what was done so far.
        let setup = || -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
            let mut out = io::stdout();
            crossterm::execute!(out, EnterAlternateScreen, cursor::Hide)?;
            let mut t = Terminal::new(CrosstermBackend::new(out))?;
            t.clear()?;
            Ok(t)
        };
        match setup() {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }

    /// Hands the terminal back now, reporting a failure (Drop does the same, silently).
    pub fn restore(&mut self) -> io::Result<()> {
        if ACTIVE.swap(false, Ordering::SeqCst) {
            RESTORED.store(true, Ordering::SeqCst);
            let raw = terminal::disable_raw_mode();
            crossterm::execute!(io::stdout(), LeaveAlternateScreen, cursor::Show)?;
            raw?;
        }
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the terminal was handed back (by the guard or by the panic hook).
pub fn restored() -> bool {
    RESTORED.load(Ordering::SeqCst)
}

/// Leaves raw mode and the alternate screen if the UI has them; idempotent, never fails.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        RESTORED.store(true, Ordering::SeqCst);
        let _ = terminal::disable_raw_mode();
        let mut out = io::stdout();
        let _ = crossterm::execute!(out, LeaveAlternateScreen, cursor::Show);
        let _ = out.flush();
    }
}

/// Chains a hook that restores the terminal before the previous hook prints the panic.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
