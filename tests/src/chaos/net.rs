//! The peer network of a chaos cluster: one [`LinkProxy`] per directed link, and the
//! partitions of the fault schedule expressed as sets of cut links.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use super::proxy::LinkProxy;

#[derive(Default)]
pub struct Network {
    links: HashMap<(usize, usize), LinkProxy>,
}

impl Network {
    /// A proxy for the link from member `from` to member `to` (whose peer port is
    /// `target`); returns the address `from` must dial.
    pub fn add_link(&mut self, from: usize, to: usize, target: SocketAddr) -> SocketAddr {
        let proxy = LinkProxy::start(Ipv4Addr::LOCALHOST, target).expect("start a link proxy");
        let addr = proxy.addr();
        self.links.insert((from, to), proxy);
        addr
    }

    fn set(&self, from: usize, to: usize, cut: bool) {
        if let Some(link) = self.links.get(&(from, to)) {
            if cut {
                link.cut();
            } else {
                link.heal();
            }
        }
    }

    /// Cuts both directions between every pair of members in different groups.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        for (a, ga) in groups.iter().enumerate() {
            for (b, gb) in groups.iter().enumerate() {
                if a != b {
                    for &i in ga {
                        for &j in gb {
                            self.set(i, j, true);
                        }
                    }
                }
            }
        }
    }

    /// Cuts one member off from all others, both ways.
    pub fn isolate(&self, member: usize, n: usize) {
        let rest: Vec<usize> = (0..n).filter(|&j| j != member).collect();
        self.partition(&[vec![member], rest]);
    }

    /// Two halves that cannot talk to each other, and a bridge member that talks to both
    /// (Jepsen's "bridge"): each half plus the bridge is a majority.
    pub fn bridge(&self, left: &[usize], bridge: usize, right: &[usize]) {
        let _ = bridge;
        for &i in left {
            for &j in right {
                self.set(i, j, true);
                self.set(j, i, true);
            }
        }
    }

    /// Cuts a single direction (asymmetric partition).
    pub fn cut_one_way(&self, from: usize, to: usize) {
        self.set(from, to, true);
    }

    pub fn heal(&self) {
        for link in self.links.values() {
            link.heal();
        }
    }

    /// The links cut right now, as `(from, to)`.
    pub fn cut_links(&self) -> Vec<(usize, usize)> {
        let mut cut: Vec<_> = self.links.iter().filter(|(_, l)| l.is_cut()).map(|(k, _)| *k).collect();
        cut.sort();
        cut
    }
}
