//! Black-box test harness: real `cairn` processes on a loopback address.
//!
//! A [`Cluster`] starts n members on a random address 127.0.0.X with free ports, each with
//! its own data directory inside one temporary directory and its output in a log file
//! there. Dropping the cluster kills every member (SIGKILL) and removes the directory; when
//! the drop happens during a panic, the tail of each member's log goes to stderr first.
//!
//! Members are started with `PR_SET_PDEATHSIG(SIGKILL)`, which fires when the *thread* that
//! spawned them ends: start and restart members from the test's own thread only.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use tempfile::TempDir;

pub use serde_json::json;

pub mod chaos;
pub mod check;
pub mod history;
pub mod sse;

/// How long a member may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of one HTTP request made by the harness.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `cairn` binary under test: `$CAIRN_BIN`, or `cairn` next to the test's target dir.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CAIRN_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "CAIRN_BIN={} does not exist", bin.display());
        return bin;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // Test executables live in target/<profile>/deps/.
    let mut dir = exe.parent().expect("exe has a directory").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join("cairn");
    if !bin.is_file() {
        panic!("{} is missing: run `cargo build --bin cairn` first (make test does)", bin.display());
    }
    bin
}

/// A blocking HTTP client with the harness's timeout and no connection reuse surprises.
pub fn http_client() -> Client {
    Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(4)
        .build()
        .expect("http client")
}

/// An HTTP answer, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    fn from_reqwest(r: reqwest::blocking::Response) -> reqwest::Result<Resp> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes()?.to_vec();
        Ok(Resp { status, headers, body })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e}): {}", self.status, self.text()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    pub fn content_type(&self) -> String {
        self.header(CONTENT_TYPE.as_str()).unwrap_or_default()
    }

    /// Asserts the status, showing the body when it differs; returns self.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }

    /// Asserts a successful JSON answer with this status and a well-formed `header`;
    /// returns the body.
    #[track_caller]
    pub fn ok_json(&self, status: u16, member: u64) -> Value {
        self.expect_status(status);
        assert!(
            self.content_type().starts_with("application/json"),
            "content-type {:?}",
            self.content_type()
        );
        let v = self.json();
        assert_header(&v, member);
        v
    }

    /// Asserts an error answer of the contract: this status, JSON `{code, message}`;
    /// returns the body.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status (wanted {code}); body: {}", self.text());
        assert!(
            self.content_type().starts_with("application/json"),
            "an error must be JSON; content-type {:?}, body {:?}",
            self.content_type(),
            self.text()
        );
        let v = self.json();
        assert_eq!(v["code"], code, "error code; body: {v}");
        let message = v["message"].as_str().unwrap_or_else(|| panic!("error without a message: {v}"));
        assert!(!message.is_empty(), "empty error message: {v}");
        assert!(
            v["header"]["member"].as_u64().is_some() && v["header"]["revision"].as_u64().is_some(),
            "error without a header: {v}"
        );
        v
    }
}

/// Checks `header: {revision, raft_term, leader, member}`; returns `header.revision`.
#[track_caller]
pub fn assert_header(v: &Value, member: u64) -> u64 {
    let h = &v["header"];
    assert!(h.is_object(), "response without header: {v}");
    let revision = h["revision"].as_u64().unwrap_or_else(|| panic!("header.revision: {v}"));
    let term = h["raft_term"].as_u64().unwrap_or_else(|| panic!("header.raft_term: {v}"));
    assert!(term >= 1, "header.raft_term is {term}: {v}");
    assert!(h["leader"].is_u64() || h["leader"].is_null(), "header.leader: {v}");
    assert_eq!(h["member"].as_u64(), Some(member), "header.member: {v}");
    revision
}

/// One request over a fresh TCP connection with the target sent byte for byte, for paths
/// an URL library would normalise (`..`, `%2E%2E`) or refuse.
pub fn raw_request(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
    s.set_read_timeout(Some(REQUEST_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(REQUEST_TIMEOUT)).expect("timeout");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write request");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response has a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) =
                (HeaderName::from_bytes(k.trim().as_bytes()), HeaderValue::from_str(v.trim()))
            {
                headers.append(k, v);
            }
        }
    }
    let chunked =
        headers.get("transfer-encoding").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            std::str::from_utf8(&raw[..eol]).ok().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}

struct Member {
    id: u64,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

/// Running `cairn` members on one loopback address.
pub struct Cluster {
    dir: Option<TempDir>,
    ip: Ipv4Addr,
    bin: PathBuf,
    members: Vec<Member>,
    http: Client,
}

/// Ports free on `ip` right now (held together so they are distinct).
fn free_ports(ip: Ipv4Addr, n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind((ip, 0)).expect("bind a free port on loopback")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr").port()).collect()
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl ran.
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

impl Cluster {
    /// Starts an n-member cluster and waits until every member is ready.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// Like [`Cluster::start`], with extra flags for every member (e.g. `--snapshot-logs 20`).
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_routed(n, extra, |_, _, peer| peer)
    }

    /// Like [`Cluster::start_with`], and member `i` dials member `j` at
    /// `dial(i, j, peer address of j)` (`--peer-routes`): the fault-injection suite puts a
    /// proxy on every directed link this way. `dial` runs before any member starts.
    pub fn start_routed(
        n: usize,
        extra: &[&str],
        mut dial: impl FnMut(usize, usize, SocketAddr) -> SocketAddr,
    ) -> Cluster {
        assert!(n >= 1);
        let bin = binary();
        let dir = tempfile::Builder::new().prefix("cairn-test-").tempdir().expect("temp dir");
        let ip = Ipv4Addr::new(127, 0, 0, rand::thread_rng().gen_range(2..250));
        let ports = free_ports(ip, 2 * n);
        let peers: Vec<SocketAddr> = (0..n).map(|i| SocketAddr::from((ip, ports[2 * i + 1]))).collect();
        let initial: Vec<String> = peers.iter().enumerate().map(|(i, p)| format!("{}={p}", i + 1)).collect();
        let initial = initial.join(",");
        let mut cluster = Cluster { dir: Some(dir), ip, bin, members: Vec::new(), http: http_client() };
        for i in 0..n {
            let id = i as u64 + 1;
            let client_addr = SocketAddr::from((ip, ports[2 * i]));
            let mut args = vec!["--initial-cluster".to_owned(), initial.clone()];
            let routes: Vec<String> = (0..n)
                .filter(|&j| j != i)
                .filter_map(|j| {
                    let to = dial(i, j, peers[j]);
                    (to != peers[j]).then(|| format!("{}={to}", j + 1))
                })
                .collect();
            if !routes.is_empty() {
                args.extend(["--peer-routes".to_owned(), routes.join(",")]);
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            cluster.add_process(id, client_addr, peers[i], args);
        }
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_ready(i);
        }
        cluster
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    fn add_process(
        &mut self,
        id: u64,
        client_addr: SocketAddr,
        peer_addr: SocketAddr,
        extra: Vec<String>,
    ) -> usize {
        let data_dir = self.root().join(format!("member-{id}"));
        let log = self.root().join(format!("member-{id}.log"));
        let mut args = vec![
            "--id".to_owned(),
            id.to_string(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--listen-client".to_owned(),
            client_addr.to_string(),
            "--listen-peer".to_owned(),
            peer_addr.to_string(),
        ];
        args.extend(extra);
        self.members.push(Member { id, client_addr, peer_addr, data_dir, log, args, child: None });
        self.members.len() - 1
    }

    fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "member {} is already running", m.id);
        let mut log = OpenOptions::new().create(true).append(true).open(&m.log).expect("open log");
        writeln!(log, "=== harness: starting {} {}", self.bin.display(), m.args.join(" "))
            .expect("write log");
        let err = log.try_clone().expect("clone log");
        let mut cmd = Command::new(&self.bin);
        cmd.args(&m.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .env("CAIRN_LOG", std::env::var("CAIRN_LOG").unwrap_or_else(|_| "info,openraft=warn".into()));
        die_with_parent(&mut cmd);
        m.child = Some(cmd.spawn().expect("spawn cairn"));
    }

    /// Number of members (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member id of member `i` (ids start at 1; index `i` is id `i + 1` for founders).
    pub fn id(&self, i: usize) -> u64 {
        self.members[i].id
    }

    /// The index of the member with this id.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    pub fn client_addr(&self, i: usize) -> SocketAddr {
        self.members[i].client_addr
    }

    pub fn peer_addr(&self, i: usize) -> SocketAddr {
        self.members[i].peer_addr
    }

    /// The OS process id of member i while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The harness's HTTP client (cheap to clone into threads).
    pub fn http(&self) -> &Client {
        &self.http
    }

    /// `http://<client addr of i><path>`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.members[i].client_addr)
    }

    /// Whether member i's process is running.
    pub fn is_alive(&mut self, i: usize) -> bool {
        match self.members[i].child.as_mut() {
            None => false,
            Some(c) => c.try_wait().expect("try_wait").is_none(),
        }
    }

    /// Indexes of members whose process runs.
    pub fn alive(&mut self) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| self.is_alive(i)).collect()
    }

    /// SIGKILL member i and wait for it to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP member i: it keeps its sockets but answers nothing until [`Cluster::resume`].
    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
    }

    /// SIGCONT member i.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
    }

    fn signal(&mut self, i: usize, sig: libc::c_int) {
        if let Some(pid) = self.pid(i) {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on the pid of a child we still own (not yet reaped).
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// SIGKILL every member at once (signals first, then waits).
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            if let Some(c) = m.child.as_mut() {
                let _ = c.kill();
            }
        }
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.wait();
            }
        }
    }

    /// Starts member i again with the same flags and data dir (it must not be running).
    /// Does not wait for readiness.
    pub fn start_member(&mut self, i: usize) {
        if self.is_alive(i) {
            panic!("member {} is still running", self.members[i].id);
        }
        self.members[i].child = None;
        self.spawn(i);
    }

    /// Starts member i again and waits until it is ready.
    pub fn restart(&mut self, i: usize) {
        self.start_member(i);
        self.wait_ready(i);
    }

    /// Panics with the log when member i's process has exited.
    fn check_running(&mut self, i: usize) {
        if let Some(c) = self.members[i].child.as_mut() {
            if let Some(status) = c.try_wait().expect("try_wait") {
                panic!("member {} exited ({status}):\n{}", self.members[i].id, self.log_tail(i, 40));
            }
        }
    }

    /// Polls GET /ready on member i until 200 (at most [`READY_TIMEOUT`]).
    pub fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.url(i, "/ready");
        let mut last = String::new();
        while Instant::now() < deadline {
            self.check_running(i);
            match self.http.get(&url).timeout(Duration::from_secs(4)).send() {
                Ok(r) if r.status().as_u16() == 200 => return,
                Ok(r) => last = format!("{}: {}", r.status(), r.text().unwrap_or_default()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("member {} not ready within {READY_TIMEOUT:?}; last answer: {last}", self.members[i].id);
    }

    /// Polls GET /health on member i until 200.
    pub fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.url(i, "/health");
        while Instant::now() < deadline {
            self.check_running(i);
            if let Ok(r) = self.http.get(&url).timeout(Duration::from_secs(2)).send() {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("member {} not healthy within {READY_TIMEOUT:?}", self.members[i].id);
    }

    /// `GET /v1/cluster` of member i, or None if it does not answer.
    pub fn cluster_info(&self, i: usize) -> Option<Value> {
        let r = self.http.get(self.url(i, "/v1/cluster")).timeout(Duration::from_secs(3)).send().ok()?;
        if r.status().as_u16() != 200 {
            return None;
        }
        r.json().ok()
    }

    /// The index of the leader: a running member whose own `/v1/cluster` names itself as
    /// `cluster.leader`. Polls for at most [`READY_TIMEOUT`].
    pub fn leader(&mut self) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            for i in self.alive() {
                if let Some(info) = self.cluster_info(i) {
                    if info["cluster"]["leader"].as_u64() == Some(self.members[i].id) {
                        return i;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no leader among the running members within {READY_TIMEOUT:?}");
    }

    /// Starts a new empty member with `--join` (next free id), waits until it serves, and
    /// adds it as a learner through the leader. Returns its index.
    pub fn add_learner(&mut self, extra: &[&str]) -> usize {
        let id = self.members.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let ports = free_ports(self.ip, 2);
        let client_addr = SocketAddr::from((self.ip, ports[0]));
        let peer_addr = SocketAddr::from((self.ip, ports[1]));
        let mut args = vec!["--join".to_owned()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let i = self.add_process(id, client_addr, peer_addr, args);
        self.spawn(i);
        self.wait_healthy(i);
        let leader = self.leader();
        let body = json!({ "id": id, "peer_addr": peer_addr.to_string() });
        let r = self.request(leader, Method::POST, "/v1/cluster/members", body.to_string().into_bytes());
        let v = r.ok_json(201, self.members[leader].id);
        assert_eq!(v["member"]["id"], id, "{v}");
        i
    }

    /// Promotes member i (a learner) to voter through the leader.
    pub fn promote(&mut self, i: usize) {
        let id = self.members[i].id;
        let leader = self.leader();
        let r = self.request(leader, Method::POST, &format!("/v1/cluster/members/{id}/promote"), Vec::new());
        r.ok_json(200, self.members[leader].id);
    }

    /// One request to member i; panics on a transport error.
    #[track_caller]
    pub fn request(&self, i: usize, method: Method, path: &str, body: Vec<u8>) -> Resp {
        self.try_request(i, method.clone(), path, body)
            .unwrap_or_else(|e| panic!("{method} {path} on member {}: {e}", self.members[i].id))
    }

    pub fn try_request(&self, i: usize, method: Method, path: &str, body: Vec<u8>) -> reqwest::Result<Resp> {
        let r = self.http.request(method, self.url(i, path)).body(body).send()?;
        Resp::from_reqwest(r)
    }

    #[track_caller]
    pub fn get(&self, i: usize, path: &str) -> Resp {
        self.request(i, Method::GET, path, Vec::new())
    }

    #[track_caller]
    pub fn put(&self, i: usize, path: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.request(i, Method::PUT, path, body.into())
    }

    #[track_caller]
    pub fn post(&self, i: usize, path: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.request(i, Method::POST, path, body.into())
    }

    #[track_caller]
    pub fn post_json(&self, i: usize, path: &str, body: &Value) -> Resp {
        self.request(i, Method::POST, path, body.to_string().into_bytes())
    }

    #[track_caller]
    pub fn delete(&self, i: usize, path: &str) -> Resp {
        self.request(i, Method::DELETE, path, Vec::new())
    }

    /// A request sent byte for byte (see [`raw_request`]).
    pub fn raw(&self, i: usize, method: &str, target: &str, body: &[u8]) -> Resp {
        raw_request(self.members[i].client_addr, method, target, body)
    }

    /// Member i's log file (stdout and stderr of every start).
    pub fn log_file(&self, i: usize) -> &Path {
        &self.members[i].log
    }

    /// The last `lines` lines of member i's log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.members[i].log) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            for i in 0..self.members.len() {
                let m = &self.members[i];
                let _ = writeln!(
                    err,
                    "\n----- member {} (client {}, peer {}) log tail: {} -----\n{}",
                    m.id,
                    m.client_addr,
                    m.peer_addr,
                    m.log.display(),
                    self.log_tail(i, 60)
                );
            }
            if std::env::var_os("CAIRN_KEEP_DATA").is_some() {
                if let Some(dir) = self.dir.take() {
                    let kept = dir.keep();
                    let _ = writeln!(err, "kept test data in {}", kept.display());
                }
            }
        }
        // The TempDir (if still held) removes the directory when dropped.
        self.dir.take();
    }
}

/// Polls `f` every 50 ms until it returns Some, at most `timeout`; panics with `what`.
#[track_caller]
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Standard base64 with padding (RFC 4648), for values sent with `encoding=base64`.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_joins_chunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
