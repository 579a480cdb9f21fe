//! The local peers of TCP and UDP sockets: when both ends of a connection are on this node
//! (loopback, or one of the node's own addresses) in hangwatch's network namespace, the kernel
//! lists both in /proc/net/{tcp,tcp6,udp,udp6}: the peer of a socket is the entry whose local
//! address is its remote address and whose remote address is its local address.
//!
//! Read only when a blocked thread waits on a socket that is not a connected Unix socket, and
//! at most [`MAX_TABLE_BYTES`] of each table (a busy node has 100,000s of connections).

pub use crate::model::facts::Peer;
use std::{
    collections::{HashMap, HashSet},
    fs,
    io::Read,
    net::{Ipv4Addr, Ipv6Addr},
};

/// Bytes read at most from each /proc/net table (about 150 bytes a socket).
pub const MAX_TABLE_BYTES: u64 = 16 << 20;

/// An address and port as /proc/net shows them (hex: `0100007F:1F90`).
pub type Endpoint = (String, u16);

/// One socket of a /proc/net/{tcp,udp}{,6} table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetSock {
    pub local: Endpoint,
    pub remote: Endpoint,
    /// TCP state (01 ESTABLISHED, 0A LISTEN ...); for UDP 01 means connected.
    pub state: u8,
    pub inode: u64,
}

fn endpoint(s: &str) -> Option<Endpoint> {
    let (addr, port) = s.split_once(':')?;
    if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((addr.to_ascii_uppercase(), u16::from_str_radix(port, 16).ok()?))
}

/// The sockets of one /proc/net table (its header and malformed lines skipped).
pub fn parse_table(s: &str) -> Vec<InetSock> {
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_ascii_whitespace().collect();
            Some(InetSock {
                local: endpoint(f.get(1)?)?,
                remote: endpoint(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F` → 127.0.0.1; 32 hex digits → an IPv6 address (each 32-bit word in host order,
/// as the kernel prints it).
pub fn show_addr(hex: &str) -> String {
    let word = |i: usize| {
        hex.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(|w| w.to_ne_bytes())
    };
    match hex.len() {
        8 => word(0).map_or_else(|| hex.to_string(), |b| Ipv4Addr::from(b).to_string()),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let Some(b) = word(i) else { return hex.to_string() };
                bytes[i * 4..i * 4 + 4].copy_from_slice(&b);
            }
            let a = Ipv6Addr::from(bytes);
            a.to_ipv4_mapped().map_or_else(|| format!("[{a}]"), |v4| v4.to_string())
        }
        _ => hex.to_string(),
    }
}

fn show(e: &Endpoint) -> String {
    format!("{}:{}", show_addr(&e.0), e.1)
}

/// The peers of the sockets `wanted` among the sockets of one protocol (`proto`: "tcp" or
/// "udp"). A connection is matched only when exactly one socket has the mirrored addresses.
pub fn peers(proto: &str, socks: &[InetSock], wanted: &HashSet<u64>) -> HashMap<u64, Peer> {
    let ours: Vec<&InetSock> =
        socks.iter().filter(|s| s.inode != 0 && wanted.contains(&s.inode)).collect();
    let mut out = HashMap::new();
    if ours.is_empty() {
        return out;
    }
    let keys: HashSet<(&Endpoint, &Endpoint)> =
        ours.iter().map(|s| (&s.remote, &s.local)).collect();
    let mut by_ends: HashMap<(&Endpoint, &Endpoint), Vec<u64>> = HashMap::new();
    for s in socks {
        if s.inode != 0 && s.state != 0x0A && keys.contains(&(&s.local, &s.remote)) {
            by_ends.entry((&s.local, &s.remote)).or_default().push(s.inode);
        }
    }
    for s in ours {
        // Only connected sockets have a peer (TCP ESTABLISHED / CLOSE_WAIT ..., UDP connected).
        if s.state == 0x0A || s.remote.1 == 0 {
            continue;
        }
        if let Some([peer]) = by_ends.get(&(&s.remote, &s.local)).map(Vec::as_slice) {
            out.insert(
                s.inode,
                Peer {
                    inode: *peer,
                    connection: format!("{proto} {} -> {}", show(&s.local), show(&s.remote)),
                },
            );
        }
    }
    out
}

/// One /proc/net table, at most [`MAX_TABLE_BYTES`], cut at its last full line; whether it
/// was cut.
fn read_table(path: &str) -> (String, bool) {
    let mut s = String::new();
    let Ok(f) = fs::File::open(path) else { return (s, false) };
    if f.take(MAX_TABLE_BYTES).read_to_string(&mut s).is_err() {
        return (String::new(), false);
    }
    let cut = s.len() as u64 >= MAX_TABLE_BYTES;
    if cut && let Some(nl) = s.rfind('\n') {
        s.truncate(nl + 1);
    }
    (s, cut)
}

/// The local peers of the sockets `wanted` (TCP and UDP, IPv4 and IPv6); the tables that were
/// too large to read whole.
pub fn local_peers(wanted: &HashSet<u64>) -> (HashMap<u64, Peer>, Vec<&'static str>) {
    let mut out = HashMap::new();
    let mut cut = Vec::new();
    for (proto, files) in
        [("tcp", ["/proc/net/tcp", "/proc/net/tcp6"]), ("udp", ["/proc/net/udp", "/proc/net/udp6"])]
    {
        let mut socks = Vec::new();
        for path in files {
            let (text, was_cut) = read_table(path);
            if was_cut {
                log::warn!(
                    "{path} is larger than {MAX_TABLE_BYTES} bytes: only its start was read, some local TCP/UDP peers may be missed"
                );
                cut.push(path);
            }
            socks.extend(parse_table(&text));
        }
        out.extend(peers(proto, &socks, wanted));
    }
    (out, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 1205 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A000 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 1300 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:18EB 0100007F:A000 01 00000000:00000000 00:00000000 00000000   100        0 1301 1 0000000000000000 20 4 31 10 -1
   3: 0A000002:C350 5DB8D822:01BB 01 00000000:00000000 00:00000000 00000000     0        0 1400 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:A002 0100007F:18EB 06 00000000:00000000 03:00000A2B 00000000     0        0 0 3 0000000000000000
   5: garbage
";

    #[test]
    fn table_and_addresses() {
        let t = parse_table(TCP);
        assert_eq!(t.len(), 5);
        assert_eq!(t[1].local, ("0100007F".into(), 0xA000));
        assert_eq!((t[1].state, t[1].inode), (1, 1300));
        assert_eq!(show_addr("0100007F"), "127.0.0.1");
        assert_eq!(show_addr("00000000000000000000000001000000"), "[::1]");
        assert_eq!(show_addr("0000000000000000FFFF00000100007F"), "127.0.0.1");
        assert_eq!(show_addr("zz"), "zz");
    }

    #[test]
    fn loopback_peers_and_not_remote_ones() {
        let t = parse_table(TCP);
        let wanted: HashSet<u64> = [1300, 1400, 1205].into();
        let p = peers("tcp", &t, &wanted);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[&1300].inode, 1301);
        assert_eq!(p[&1300].connection, "tcp 127.0.0.1:40960 -> 127.0.0.1:6379");
        // The server end too, when wanted.
        let p = peers("tcp", &t, &[1301].into());
        assert_eq!(p[&1301].inode, 1300);
    }
}
