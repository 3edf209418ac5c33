//! `GET /api/health`: this node's identity, load, memory, data disk and every camera's state.

use std::time::Instant;

use axum::Json;
use procfs::Current;
use serde::Serialize;

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

#[derive(Debug, Serialize)]
pub struct Health {
    node_id: String,
    version: &'static str,
    uptime_s: u64,
    cpu: Cpu,
    memory: Memory,
    disk: Disk,
    cameras: Vec<CameraHealth>,
}

fn process_cpu_ticks() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .map(|s| s.utime + s.stime)
        .unwrap_or(0)
}

pub async fn health(st: State) -> ApiResult<Json<Health>> {
    let index = st.index.clone();
    let root = st.layout.root().to_path_buf();
    let (cams, disk, mem, load, status) = blocking(move || {
        let status = procfs::process::Process::myself()
            .and_then(|p| p.status())
            .ok();
        Ok((
            index.cameras()?,
            disk_stats(&root).unwrap_or_default(),
            procfs::Meminfo::current().ok(),
            procfs::LoadAverage::current().ok(),
            status,
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
    Ok(Json(Health {
        node_id: st.index.node_id().to_string(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: st.started.elapsed().as_secs(),
        cpu: Cpu {
            process_percent: (cpu_secs / secs * 1000.0).round() / 10.0,
            load_1m: load.map_or(0.0, |l| l.one),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        },
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
