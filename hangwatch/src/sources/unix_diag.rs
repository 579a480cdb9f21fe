//! The peers of Unix sockets, from the kernel's sock_diag netlink interface (`unix_diag`, the
//! source `ss -x` uses): /proc/PID/fd names a socket by its inode only, and only sock_diag
//! tells which inode is at the other end of a connected (or socketpair) Unix socket.
//!
//! One dump lists every Unix socket of hangwatch's network namespace; sockets in other network
//! namespaces are not in it (their waits then have no known releaser, as before).

use std::{
    collections::HashMap, io, mem::size_of, os::fd::AsRawFd, os::fd::FromRawFd, os::fd::OwnedFd,
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UNIX_DIAG_PEER: u16 = 2;
const NLMSG_HDR: usize = 16;
const UNIX_DIAG_MSG: usize = 16;

/// The dump request: `nlmsghdr` + `unix_diag_req` (all states, peers wanted).
fn request() -> [u8; NLMSG_HDR + 24] {
    let mut b = [0u8; NLMSG_HDR + 24];
    b[0..4].copy_from_slice(&((NLMSG_HDR + 24) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&1u32.to_ne_bytes()); // seq
    // unix_diag_req: family, protocol, pad, states, ino, show, cookie[2]
    b[16] = libc::AF_UNIX as u8;
    b[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    b[28..32].copy_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    b
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// What one `recv` of the dump held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// (socket inode, peer inode) of the sockets that have a peer.
    pub peers: Vec<(u64, u64)>,
    /// `NLMSG_DONE` was seen: the dump is complete.
    pub done: bool,
    /// `NLMSG_ERROR` with this errno.
    pub error: Option<i32>,
}

/// Parses the netlink messages of one datagram of a unix_diag dump. Truncated or malformed
/// messages end the parse; they never panic.
pub fn parse(buf: &[u8]) -> Batch {
    let mut out = Batch::default();
    let mut at = 0;
    while let (Some(len), Some(ty)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        if len < NLMSG_HDR || at + len > buf.len() {
            break;
        }
        let msg = &buf[at + NLMSG_HDR..at + len];
        match ty {
            NLMSG_DONE => {
                out.done = true;
                break;
            }
            NLMSG_ERROR => {
                let errno = u32_at(msg, 0).map_or(0, |e| (e as i32).saturating_neg());
                if errno != 0 {
                    out.error = Some(errno);
                }
                out.done = true;
                break;
            }
            SOCK_DIAG_BY_FAMILY if msg.len() >= UNIX_DIAG_MSG => {
                let ino = u32_at(msg, 4).unwrap_or(0);
                // rtattrs after unix_diag_msg, each 4-byte aligned.
                let mut a = UNIX_DIAG_MSG;
                while let (Some(alen), Some(aty)) = (u16_at(msg, a), u16_at(msg, a + 2)) {
                    let alen = alen as usize;
                    if alen < 4 || a + alen > msg.len() {
                        break;
                    }
                    if aty == UNIX_DIAG_PEER
                        && let Some(peer) = u32_at(msg, a + 4).filter(|p| *p != 0)
                    {
                        out.peers.push((u64::from(ino), u64::from(peer)));
                    }
                    a += (alen + 3) & !3;
                }
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    out
}

/// Socket inode → its peer's inode, for every connected Unix socket of this network namespace.
pub fn peers() -> io::Result<HashMap<u64, u64>> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request();
    // SAFETY: sending an initialized buffer of its own length to the kernel (address zeroed =
    // the kernel).
    let sent = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut map = HashMap::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: receiving into a buffer of the given length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            break;
        }
        let batch = parse(&buf[..n as usize]);
        if let Some(errno) = batch.error {
            return Err(io::Error::from_raw_os_error(errno));
        }
        map.extend(batch.peers);
        if batch.done {
            break;
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR + payload.len();
        let mut b = Vec::new();
        b.extend((len as u32).to_ne_bytes());
        b.extend(ty.to_ne_bytes());
        b.extend(2u16.to_ne_bytes());
        b.extend(1u32.to_ne_bytes());
        b.extend(0u32.to_ne_bytes());
        b.extend(payload);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    fn unix_msg(ino: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut p = vec![libc::AF_UNIX as u8, libc::SOCK_STREAM as u8, 1, 0];
        p.extend(ino.to_ne_bytes());
        p.extend([0u8; 8]);
        for (ty, data) in attrs {
            p.extend(((4 + data.len()) as u16).to_ne_bytes());
            p.extend(ty.to_ne_bytes());
            p.extend(*data);
            while p.len() % 4 != 0 {
                p.push(0);
            }
        }
        msg(SOCK_DIAG_BY_FAMILY, &p)
    }

    #[test]
    fn peers_other_attributes_and_done() {
        let mut buf =
            unix_msg(100, &[(0, b"/run/x.sock\0"), (UNIX_DIAG_PEER, &101u32.to_ne_bytes())]);
        buf.extend(unix_msg(7, &[])); // unconnected: no peer attribute
        buf.extend(unix_msg(101, &[(UNIX_DIAG_PEER, &100u32.to_ne_bytes())]));
        let b = parse(&buf);
        assert_eq!(b.peers, vec![(100, 101), (101, 100)]);
        assert!(!b.done);
        let mut end = buf.clone();
        end.extend(msg(NLMSG_DONE, &0u32.to_ne_bytes()));
        assert!(parse(&end).done);
    }

    #[test]
    fn errors_and_garbage() {
        let e = parse(&msg(NLMSG_ERROR, &(-(libc::EPERM)).to_ne_bytes()));
        assert_eq!(e.error, Some(libc::EPERM));
        assert!(e.done);
        // Truncated: the length says more than the buffer holds.
        let mut t = unix_msg(5, &[(UNIX_DIAG_PEER, &6u32.to_ne_bytes())]);
        t.truncate(t.len() - 2);
        assert_eq!(parse(&t), Batch::default());
        // An attribute whose length runs past its message is ignored.
        let bad = unix_msg(5, &[(UNIX_DIAG_PEER, &6u32.to_ne_bytes())]);
        let mut bad2 = bad.clone();
        let attr_len_at = NLMSG_HDR + UNIX_DIAG_MSG;
        bad2[attr_len_at..attr_len_at + 2].copy_from_slice(&200u16.to_ne_bytes());
        assert!(parse(&bad2).peers.is_empty());
        assert!(parse(&[]).peers.is_empty());
        assert!(parse(&[1, 2, 3]).peers.is_empty());
    }

    #[test]
    fn socketpair_peers_from_the_running_kernel() {
        let mut fds = [0i32; 2];
        // SAFETY: socketpair(2) into a two-int array; closed below.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        let ino = |fd: i32| {
            let l = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
            let s = l.to_string_lossy().into_owned();
            s.trim_start_matches("socket:[").trim_end_matches(']').parse::<u64>().unwrap()
        };
        let (a, b) = (ino(fds[0]), ino(fds[1]));
        let map = peers();
        // SAFETY: closing the fds opened above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let map = map.expect("sock_diag dump");
        assert_eq!(map.get(&a), Some(&b));
        assert_eq!(map.get(&b), Some(&a));
    }
}
