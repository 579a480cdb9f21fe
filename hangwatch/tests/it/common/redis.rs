//! A real `redis-server` (Debian's, installed by `cargo xtask setup`) on a free loopback port,
//! with a private directory; stopped and removed when dropped, even on a failed assertion.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process killed and reaped when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Redis {
    pub server: Proc,
    pub port: String,
    dir: PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.server.0.kill();
        let _ = self.server.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first file called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Redis {
    /// Starts redis-server with `extra` arguments and waits until it answers PING; `None`
    /// (with a line saying so) when redis-server is not installed.
    pub fn start(extra: &[&str]) -> Option<Redis> {
        let Some(bin) = which("redis-server") else {
            eprintln!("skipped: redis-server is not installed (cargo xtask setup installs it)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "hangwatch-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let port = free_port().to_string();
        let server = Proc(
            Command::new(bin)
                .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--dir"])
                .arg(&dir)
                .args(extra)
                .stdout(Stdio::null())
                .spawn()
                .expect("start redis-server"),
        );
        let redis = Redis { server, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while redis.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not answer PING");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(redis)
    }

    pub fn pid(&self) -> i32 {
        self.server.0.id() as i32
    }

    /// `redis-cli -p PORT args...`, its output trimmed ("" if it could not run).
    pub fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}
