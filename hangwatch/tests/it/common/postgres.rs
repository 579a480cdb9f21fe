//! A real PostgreSQL server (Debian's `postgresql`, installed by `cargo xtask setup`): a
//! throw-away cluster in a private directory, listening only on a unix socket there, run as
//! the `postgres` user; stopped (immediate shutdown, every session with it) and removed when
//! dropped, even on a failed assertion. Clients are `psql` processes killed when dropped.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::Proc;

pub struct Postgres {
    server: Proc,
    bin: PathBuf,
    dir: PathBuf,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the postmaster takes its sessions down with it.
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.server.0.id() as i32, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.server.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/N/bin` holding a `postgres` binary.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d): &(u32, PathBuf)| d.join("postgres").is_file())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

/// uid and gid of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// A `psql` session whose standard input the test writes: it stays connected until dropped.
pub struct Session {
    pub client: Proc,
    stdin: ChildStdin,
}

impl Session {
    pub fn pid(&self) -> i32 {
        self.client.0.id() as i32
    }

    /// Sends SQL (one line or more) to the session.
    pub fn send(&mut self, sql: &str) {
        writeln!(self.stdin, "{sql}").expect("write to psql");
        self.stdin.flush().expect("flush psql");
    }
}

impl Postgres {
    /// initdb, then starts the server and waits until it accepts connections; `None` (with a
    /// line saying so) when PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            eprintln!("skipped: PostgreSQL is not installed (cargo xtask setup installs it)");
            return None;
        };
        let (uid, gid) = user_ids("postgres").expect("the postgres package made a postgres user");
        let dir = std::env::temp_dir().join(format!(
            "hangwatch-pg-{}-{}",
            std::process::id(),
            super::redis::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("postgres dir");
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown postgres dir");
        let data = dir.join("data");
        let out = Command::new(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .uid(uid)
            .gid(gid)
            .current_dir(&dir)
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let server = Proc(
            Command::new(bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(&dir)
                .args(["-c", "listen_addresses=", "-c", "fsync=off"])
                .uid(uid)
                .gid(gid)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start postgres"),
        );
        let pg = Postgres { server, bin, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while pg.sql("select 1") != "1" {
            assert!(Instant::now() < deadline, "postgres did not accept connections");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(pg)
    }

    fn psql(&self) -> Command {
        let mut c = Command::new(self.bin.join("psql"));
        c.arg("-h").arg(&self.dir).args(["-U", "postgres", "-X", "-q", "-A", "-t"]);
        c
    }

    /// Runs one statement, its output trimmed ("" if it failed).
    pub fn sql(&self, sql: &str) -> String {
        self.psql()
            .args(["-c", sql])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// A client running one statement in the background (it may block).
    pub fn client(&self, sql: &str) -> Proc {
        Proc(
            self.psql()
                .args(["-c", sql])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start psql"),
        )
    }

    /// An interactive session fed by the test.
    pub fn session(&self) -> Session {
        let mut c: Child = self
            .psql()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start psql");
        let stdin = c.stdin.take().expect("piped");
        Session { client: Proc(c), stdin }
    }

    /// The session (backend) running a statement `like` the pattern, by pg_stat_activity.
    pub fn backend_of_query(&self, like: &str) -> Option<i32> {
        let q = format!(
            "select pid from pg_stat_activity where query like '{like}' and pid <> pg_backend_pid()"
        );
        self.sql(&q).lines().next()?.trim().parse().ok()
    }

    /// Waits until `cond` holds on `select ...` output, up to 30 s.
    pub fn wait_until(&self, sql: &str, cond: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.sql(sql);
            if cond(&out) {
                return;
            }
            assert!(Instant::now() < deadline, "{sql}: still {out:?} after 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
