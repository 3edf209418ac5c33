//! `GET /api/health`: this node's identity, load, memory, data disk and every camera's state.

use std::time::Instant;

use axum::extract::Query;
use axum::{Extension, Json};
use procfs::Current;
use serde::Serialize;

use super::auth::Caller;
use super::{ApiResult, State, blocking};
use crate::recorder::CameraStatus;
use crate::storage::retention::disk_stats;

#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    ticks: u64,
}

#[derive(Debug, Serialize)]
struct Cpu {
    /// Share of one core used by Eyrie since the previous health call (or since start).
    process_percent: f64,
    load_1m: f32,
    cores: usize,
}

#[derive(Debug, Serialize)]
struct Memory {
    process_rss_bytes: u64,
    process_peak_rss_bytes: u64,
    total_bytes: u64,
    available_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Disk {
    total_bytes: u64,
    used_bytes: u64,
    free_bytes: u64,
    recordings_bytes: u64,
    budget_bytes: Option<u64>,
    min_free_bytes: u64,
}

#[derive(Debug, Serialize)]
struct CameraHealth {
    id: String,
    name: String,
    enabled: bool,
    #[serde(flatten)]
    status: CameraStatus,
}

/// One remote node as the local node last heard from it.
#[derive(Debug, Serialize)]
struct NodeHealth {
    id: String,
    label: String,
    url: String,
    reachable: bool,
    stale: bool,
    /// Of the last poll; null when it got no answer.
    latency_ms: Option<u64>,
    last_seen: Option<String>,
    /// Seconds since the node last answered: the numbers below are that old.
    last_seen_age_s: Option<u64>,
    last_error: Option<String>,
    node_id: Option<String>,
    version: Option<String>,
    #[serde(flatten)]
    health: Option<crate::federation::peers::PeerHealth>,
}

#[derive(Debug, Serialize)]
pub struct Health {
    node_id: String,
    label: String,
    version: &'static str,
    /// SHA-256 of the HTTPS certificate, for peers to pin; absent without HTTPS.
    tls_fingerprint: Option<String>,
    uptime_s: u64,
    cpu: Cpu,
    /// The board's temperature (its first thermal zone, the SoC on a Pi); absent when the
    /// kernel reports none.
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature_c: Option<f64>,
    memory: Memory,
    disk: Disk,
    cameras: Vec<CameraHealth>,
    /// The appliance's slots and the last boot-config error; null when not an appliance.
    system: Option<SystemHealth>,
    /// Remote nodes; left out for peers and with `?scope=local`.
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<Vec<NodeHealth>>,
}

#[derive(Debug, Serialize)]
struct SystemHealth {
    #[serde(flatten)]
    slots: crate::system::SlotStatus,
    /// Why the last `apply-boot-config` failed (eyrie.toml on the boot partition); null when
    /// it succeeded, and for peers.
    boot_config_error: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct HealthQuery {
    scope: Option<String>,
}

/// The first thermal zone's temperature in °C (the kernel reports millidegrees).
fn board_temperature() -> Option<f64> {
    celsius(&std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?)
}

/// Millidegrees as the kernel writes them ("48312\n") to °C with one decimal.
fn celsius(milli: &str) -> Option<f64> {
    let milli: i64 = milli.trim().parse().ok()?;
    Some((milli as f64 / 100.0).round() / 10.0)
}

fn process_cpu_ticks() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map(|s| s.utime + s.stime)
        .unwrap_or(0)
}

pub async fn health(
    st: State,
    Query(q): Query<HealthQuery>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Health>> {
    let local_only = super::cameras::local_only(q.scope.as_deref(), &caller)?;
    let index = st.index.clone();
    let root = st.layout.root().to_path_buf();
    let sys = st.system.clone();
    // The error may quote a line of eyrie.toml: people's business, not peers'.
    let person = matches!(caller, Caller::User { .. });
    let (cams, nodes, disk, mem, load, status, system) = blocking(move || {
        let status = procfs::process::Process::myself()
            .and_then(|p| p.status())
            .ok();
        Ok((
            index.cameras()?,
            if local_only {
                None
            } else {
                Some(index.nodes()?)
            },
            disk_stats(&root).unwrap_or_default(),
            procfs::Meminfo::current().ok(),
            procfs::LoadAverage::current().ok(),
            status,
            match sys.status() {
                Ok(Some(slots)) => Some(SystemHealth {
                    slots,
                    boot_config_error: sys.boot_config_error().filter(|_| person),
                }),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!("health: {e}");
                    None
                }
            },
        ))
    })
    .await?;
    let now = CpuSample {
        at: Instant::now(),
        ticks: process_cpu_ticks(),
    };
    let prev = st.cpu.lock().unwrap().replace(now).unwrap_or(CpuSample {
        at: st.started,
        ticks: 0,
    });
    let secs = now.at.duration_since(prev.at).as_secs_f64().max(1e-3);
    let cpu_secs = now.ticks.saturating_sub(prev.ticks) as f64 / procfs::ticks_per_second() as f64;
    let cfg = st.retention.config();
    let nodes = nodes.map(|nodes| {
        nodes
            .into_iter()
            .filter(|n| n.enabled)
            .map(|n| {
                let p = st.peers.status(&n.id);
                NodeHealth {
                    stale: st.peers.is_stale(&p),
                    id: n.id,
                    label: n.label,
                    url: n.url,
                    reachable: p.online,
                    latency_ms: p.latency_ms,
                    last_seen: p.last_seen_ms.map(super::rfc3339),
                    last_seen_age_s: p.last_seen_ms.map(super::nodes::age_s),
                    last_error: p.last_error,
                    node_id: p.node_id,
                    version: p.version,
                    health: p.health,
                }
            })
            .collect()
    });
    Ok(Json(Health {
        system,
        nodes,
        node_id: st.index.node_id().to_string(),
        label: st.label(),
        tls_fingerprint: st.tls_fingerprint.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: st.started.elapsed().as_secs(),
        cpu: Cpu {
            process_percent: (cpu_secs / secs * 1000.0).round() / 10.0,
            load_1m: load.map_or(0.0, |l| l.one),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
        temperature_c: board_temperature(),
        memory: Memory {
            process_rss_bytes: status.as_ref().and_then(|s| s.vmrss).unwrap_or(0) * 1024,
            process_peak_rss_bytes: status.as_ref().and_then(|s| s.vmhwm).unwrap_or(0) * 1024,
            total_bytes: mem.as_ref().map_or(0, |m| m.mem_total),
            available_bytes: mem.as_ref().and_then(|m| m.mem_available).unwrap_or(0),
        },
        disk: Disk {
            total_bytes: disk.total,
            used_bytes: disk.total.saturating_sub(disk.free),
            free_bytes: disk.free,
            recordings_bytes: st.retention.used(),
            budget_bytes: cfg.budget,
            min_free_bytes: cfg.min_free,
        },
        cameras: cams
            .into_iter()
            .map(|c| CameraHealth {
                status: st.recorder.status(&c.id),
                id: c.id,
                name: c.name,
                enabled: c.enabled,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_millidegrees_become_celsius() {
        assert_eq!(super::celsius("48312\n"), Some(48.3));
        assert_eq!(super::celsius("-5000"), Some(-5.0));
        assert_eq!(super::celsius("hot"), None);
    }
}
