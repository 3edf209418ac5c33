//! Embeds the web UI (`ui/`) in the binary: every file gzip-compressed, with a content hash for
//! its ETag, and one hash of the whole UI that names the asset URLs (`/assets/{hash}/...`), so
//! browsers may cache them for good and a new build is fetched at once. `index.html` refers to
//! that prefix as `%ASSETS%`. Plain files in, no bundler: a clean checkout builds with cargo.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") | Some("webmanifest") => "application/manifest+json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        other => panic!("ui/: no content type for extension {other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    // The boards link OpenH264's C++ runtime statically, after everything (.cargo/config.toml);
    // libgcc after it again, for what that static libstdc++ calls (aarch64's outline atomics).
    if matches!(
        std::env::var("CARGO_CFG_TARGET_ARCH").as_deref(),
        Ok("aarch64" | "arm")
    ) {
        println!("cargo:rustc-link-arg=-lgcc");
    }
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("ui");
    println!("cargo:rerun-if-changed=ui");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut list = Vec::new();
    files(&root, &mut list);
    let mut whole = Sha256::new();
    let mut contents = Vec::new();
    for p in &list {
        let rel = p
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let data = std::fs::read(p).unwrap();
        whole.update(rel.as_bytes());
        whole.update(&data);
        contents.push((rel, p.clone(), data));
    }
    let build = hex(&whole.finalize()[..6]);
    let mut code = format!(
        "/// Names this build's asset URLs.\npub const BUILD: &str = \"{build}\";\n\npub static ASSETS: &[Asset] = &[\n"
    );
    for (i, (rel, path, mut data)) in contents.into_iter().enumerate() {
        if rel == "index.html" {
            data = String::from_utf8(data)
                .expect("index.html is UTF-8")
                .replace("%ASSETS%", &format!("/assets/{build}"))
                .into_bytes();
        }
        let etag = hex(&Sha256::digest(&data)[..8]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let gz_path = out.join(format!("ui-{i}.gz"));
        std::fs::write(&gz_path, gz).unwrap();
        code.push_str(&format!(
            "    Asset {{ path: {rel:?}, mime: {:?}, etag: \"\\\"{etag}\\\"\", gz: include_bytes!({:?}) }},\n",
            mime(&path),
            gz_path.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("ui_assets.rs"), code).unwrap();
}
