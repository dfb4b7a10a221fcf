//! A TCP proxy on one directed peer link (member i dials member j through it), so the
//! harness can cut exactly that direction: a cut drops every open connection and refuses
//! new ones until healed, as a partition seen by a connection-oriented transport.
//!
//! Plain threads and blocking sockets: a handful of pooled peer connections per link, and
//! the harness has no async runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn close_all(&self) {
        if let Ok(mut open) = self.open.lock() {
            for s in open.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

pub struct LinkProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl LinkProxy {
    /// Listens on a free port of `ip` and forwards to `target`.
    pub fn start(ip: std::net::Ipv4Addr, target: SocketAddr) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind((ip, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            open: Mutex::default(),
        });
        let acceptor = shared.clone();
        thread::spawn(move || accept_loop(listener, target, acceptor));
        Ok(LinkProxy { addr, shared })
    }

    /// Where the dialing member should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Drops every connection on this link and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }

    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((inbound, _)) => {
                if shared.cut.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = inbound.set_nonblocking(false);
                let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_millis(500)) else {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                if let Ok(mut open) = shared.open.lock() {
                    open.retain(|s| s.peer_addr().is_ok());
                    for s in [&inbound, &outbound] {
                        if let Ok(c) = s.try_clone() {
                            open.push(c);
                        }
                    }
                }
                for (from, to) in [(&inbound, &outbound), (&outbound, &inbound)] {
                    if let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) {
                        thread::spawn(move || pump(from, to));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Copies one direction until either side closes, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_until_cut_and_again_once_healed() {
        let ip = std::net::Ipv4Addr::LOCALHOST;
        let echo = TcpListener::bind((ip, 0)).unwrap();
        let target = echo.local_addr().unwrap();
        thread::spawn(move || {
            for s in echo.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let mut w = s;
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        let proxy = LinkProxy::start(ip, target).unwrap();
        let roundtrip = |s: &mut TcpStream| -> bool {
            let mut b = [0u8; 4];
            s.write_all(b"ping").is_ok() && s.read_exact(&mut b).is_ok() && &b == b"ping"
        };
        let mut s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(roundtrip(&mut s));
        proxy.cut();
        assert!(!roundtrip(&mut s), "an open connection must be dropped by a cut");
        let mut s2 = TcpStream::connect(proxy.addr()).unwrap();
        s2.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(!roundtrip(&mut s2), "a new connection must be refused while cut");
        proxy.heal();
        let mut s3 = TcpStream::connect(proxy.addr()).unwrap();
        s3.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(roundtrip(&mut s3));
    }
}
