//! A private LAN for tests that multicast: network namespaces wired to a bridge that lives in a
//! namespace of its own, addresses from 10.77.0.0/24 and fd00:77::/64 inside them only. Nothing
//! is created in the host's namespace, so no test traffic reaches the host's interfaces.
//! Namespaces are removed on drop (also when a test fails), and ones left by a test process that
//! died are swept at the next start.
//!
//! Eyries run inside with `ip netns exec`; the test reaches them from a thread that has entered
//! the namespace (`setns`), so its sockets live there too.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "eyt";

/// Whether namespaces can be made here: root and iproute2 (see `tools` for when not).
pub fn can_use_namespaces() -> bool {
    super::tools::root() && super::tools::require(&["ip"])
}

/// Runs `ip args…`, panicking with its error output on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes namespaces of earlier test processes that are gone.
fn sweep() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(&format!("{PREFIX}-"))
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// A bridge and `n` nodes, node `i` at 10.77.0.{i+1} and fd00:77::{i+1} on its `eth0`.
pub struct Lan {
    bridge: String,
    nodes: Vec<String>,
}

impl Lan {
    pub fn new(n: usize) -> Lan {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        sweep();
        let id = format!(
            "{PREFIX}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let bridge = format!("{id}-br");
        ip(&["netns", "add", &bridge]);
        let mut lan = Lan {
            bridge,
            nodes: Vec::new(),
        };
        let br = lan.bridge.clone();
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        // Flood multicast to every port, whatever IGMP snooping would have learnt.
        ip(&[
            "-n",
            &br,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = format!("{id}-{i}");
            ip(&["netns", "add", &ns]);
            lan.nodes.push(ns.clone());
            let port = format!("p{i}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &br,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", lan.ipv4(i)),
                "dev",
                "eth0",
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/64", lan.ipv6(i)),
                "dev",
                "eth0",
                "nodad",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lan.wait_ready();
        lan
    }

    /// Waits until every `eth0` is operationally up and has its IPv6 link-local address (the
    /// kernel settles both a moment after `link set up`); a daemon that enumerates interfaces
    /// before that would not see them until its next check.
    fn wait_ready(&self) {
        let start = Instant::now();
        for ns in &self.nodes {
            loop {
                let out = |args: &[&str]| {
                    let o = Command::new("ip").args(args).output().expect("running ip");
                    String::from_utf8_lossy(&o.stdout).to_string()
                };
                let up = out(&["-n", ns, "-o", "link", "show", "eth0"]).contains("state UP");
                let addrs = out(&["-n", ns, "-o", "-6", "addr", "show", "dev", "eth0"]);
                let link_local = addrs.contains("fe80::") && !addrs.contains("tentative");
                if up && link_local {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{ns}: eth0 not ready: {addrs}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    pub fn ipv4(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    pub fn ipv6(&self, i: usize) -> String {
        format!("fd00:77::{}", i + 1)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.bridge)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(Path::new("/run/netns").join(ns))
                .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

/// `(status, JSON)` of a request made from inside `ns`; None when nothing answers.
pub fn request_in(ns: &str, method: &str, url: &str, body: Option<&str>) -> Option<(u16, Value)> {
    in_ns(ns, || super::json_request(method, url, body))
}

/// An Eyrie running in a namespace of a [`Lan`], on port 8080 of every address there, with
/// mDNS discovery on.
pub struct NsEyrie {
    pub child: Child,
    pub ns: String,
    pub ipv4: String,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl NsEyrie {
    pub const PORT: u16 = 8080;

    /// Starts Eyrie (with the demo camera) as node `i` of `lan`, labelled `label`; `extra` is
    /// more of its eyrie.toml.
    pub fn start(lan: &Lan, i: usize, label: &str, extra: &str) -> NsEyrie {
        Self::start_named(lan, i, label, extra, None)
    }

    /// As [`NsEyrie::start`], in a UTS namespace of its own whose host name is `host` (as the
    /// appliance's init sets it), when given.
    pub fn start_named(
        lan: &Lan,
        i: usize,
        label: &str,
        extra: &str,
        host: Option<&str>,
    ) -> NsEyrie {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let cfg = dir.join("eyrie.toml");
        std::fs::write(
            &cfg,
            format!(
                "[node]\nlabel = \"{label}\"\n[federation]\npoll_interval_seconds = 1\n\
                 request_timeout_seconds = 2\n[auth]\nadmin_user = \"{}\"\n\
                 admin_password = \"{}\"\n{extra}",
                super::ADMIN_USER,
                super::ADMIN_PASSWORD,
            ),
        )
        .unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", lan.ns(i)]);
        if let Some(host) = host {
            cmd.args([
                "unshare",
                "--uts",
                "sh",
                "-c",
                "hostname \"$0\" && exec \"$@\"",
                host,
            ]);
        }
        let child = cmd
            .arg(env!("CARGO_BIN_EXE_eyrie"))
            .arg("run")
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("[::]:{}", Self::PORT))
            .arg("--config")
            .arg(&cfg)
            .arg("--demo")
            .env(
                "RUST_LOG",
                std::env::var("EYRIE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("eyrie.log")).unwrap())
            .spawn()
            .expect("starting eyrie in a namespace");
        let e = NsEyrie {
            child,
            ns: lan.ns(i).to_string(),
            ipv4: lan.ipv4(i),
            dir,
            _tmp: tmp,
        };
        e.wait_until("answers /api/health", Duration::from_secs(20), || {
            e.try_request("GET", "/api/health", None)
                .is_some_and(|(s, _)| s == 200)
        });
        e
    }

    /// `path` on the node as its admin (HTTP Basic, as scripts log in), from inside its
    /// namespace.
    pub fn admin_url(path: &str) -> String {
        format!(
            "http://{}:{}@127.0.0.1:{}{path}",
            super::ADMIN_USER,
            super::ADMIN_PASSWORD,
            Self::PORT
        )
    }

    /// The URL other nodes reach it at.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.ipv4, Self::PORT)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("eyrie.log")).unwrap_or_default()
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Option<(u16, Value)> {
        request_in(&self.ns, method, &Self::admin_url(path), body)
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.try_request(method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer; log:\n{}", self.log()))
    }

    pub fn get(&self, path: &str) -> Value {
        let (s, v) = self.request("GET", path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    pub fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting until eyrie in {} {what}; log:\n{}",
                    self.ns,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "eyrie did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NsEyrie {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private D-Bus system bus and an avahi-daemon in a namespace, for interop tests with the
/// real avahi-browse and avahi-publish. avahi-daemon keeps its pid file and socket in
/// /run/avahi-daemon, so it gets a private /run (a tmpfs in the mount namespace `ip netns exec`
/// makes for it), and runs as root without chroot; everything else lives in a temp dir.
pub struct Avahi {
    ns: String,
    bus: String,
    dbus: Child,
    daemon: Child,
    others: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Avahi {
    pub fn start(lan: &Lan, i: usize) -> Avahi {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let bus = format!("unix:path={}", socket.display());
        std::fs::write(
            dir.path().join("bus.conf"),
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("avahi-daemon.conf"),
            "[server]\nhost-name=avahi-interop\nuse-ipv4=yes\nuse-ipv6=yes\n\
             allow-interfaces=eth0\nenable-dbus=yes\n[wide-area]\nenable-wide-area=no\n\
             [publish]\npublish-hinfo=no\npublish-workstation=no\n",
        )
        .unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dbus = Command::new("dbus-daemon")
            .arg(format!(
                "--config-file={}",
                dir.path().join("bus.conf").display()
            ))
            .args(["--nofork", "--nopidfile", "--nosyslog"])
            .stdout(Stdio::null())
            .stderr(log("dbus.log"))
            .spawn()
            .expect("starting dbus-daemon");
        let start = Instant::now();
        while !socket.exists() {
            assert!(start.elapsed() < Duration::from_secs(10), "no D-Bus socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        let daemon = Command::new("ip")
            .args(["netns", "exec", lan.ns(i), "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs tmpfs /run && exec avahi-daemon --no-drop-root --no-chroot \
                 --no-rlimits -f {}",
                dir.path().join("avahi-daemon.conf").display()
            ))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .stdout(Stdio::null())
            .stderr(log("avahi.log"))
            .spawn()
            .expect("starting avahi-daemon");
        let a = Avahi {
            ns: lan.ns(i).to_string(),
            bus,
            dbus,
            daemon,
            others: Vec::new(),
            dir,
        };
        let start = Instant::now();
        while !a.log().contains("Server startup complete") {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "avahi-daemon did not start:\n{}",
                a.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("avahi.log")).unwrap_or_default()
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, tool])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus);
        c
    }

    /// `avahi-resolve -4 -n {name}`: its output (`name<TAB>address`), empty when unresolved.
    pub fn resolve(&self, name: &str) -> String {
        let out = self
            .command("avahi-resolve")
            .args(["-4", "-n", name])
            .output()
            .expect("running avahi-resolve");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `avahi-browse -rpt {service}`: the resolved (`=`) lines, split on `;`, with the
    /// `\DDD` escapes of its parsable output undone.
    pub fn browse(&self, service: &str) -> Vec<Vec<String>> {
        let out = self
            .command("avahi-browse")
            .args(["-rpt", service])
            .output()
            .expect("running avahi-browse");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('='))
            .map(|l| l.split(';').map(unescape).collect())
            .collect()
    }

    /// `avahi-publish -s name type port txt…`, running until the Avahi is dropped.
    pub fn publish(&mut self, name: &str, service: &str, port: u16, txt: &[&str]) {
        let child = self
            .command("avahi-publish")
            .args(["-s", name, service, &port.to_string()])
            .args(txt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running avahi-publish");
        self.others.push(child);
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        for c in self
            .others
            .iter_mut()
            .chain([&mut self.daemon, &mut self.dbus])
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Undoes avahi-browse's `\DDD` (decimal byte) escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            out.push(n as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Server-Sent Events stream read from inside a namespace on a thread of its own.
pub struct Events {
    rx: std::sync::mpsc::Receiver<(String, Value)>,
}

impl Events {
    /// Opens `url` from inside `ns`; its events arrive as `(event, JSON data)`.
    pub fn open(ns: &str, url: &str) -> Events {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        let (ns, url) = (ns.to_string(), url.to_string());
        std::thread::spawn(move || {
            let file = std::fs::File::open(Path::new("/run/netns").join(&ns)).unwrap();
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            let Ok(resp) = ureq::get(&url).timeout(Duration::from_secs(120)).call() else {
                return;
            };
            let mut event = String::new();
            for line in std::io::BufReader::new(resp.into_reader()).lines() {
                let Ok(line) = line else { return };
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    let v = serde_json::from_str(d).unwrap_or(Value::Null);
                    if tx.send((event.clone(), v)).is_err() {
                        return;
                    }
                }
            }
        });
        Events { rx }
    }

    /// Waits for an event named `name` whose data satisfies `pred`.
    pub fn wait_for(&self, name: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((e, v)) if e == name && pred(&v) => return v,
                Ok(other) => seen.push(other),
                Err(_) => panic!("no matching {name} event within {limit:?}; got {seen:?}"),
            }
        }
    }
}
