//! The dependency rule, checked: base ← domain modules ← http ← main. Only `src/main.rs` and its
//! subcommands (`src/cmd/`) may use `crate::http` (and `src/fuzzing.rs`, the fuzz targets' entry
//! points, which sit beside them), and `src/base/` uses no other Eyrie module.
//! The check reads the source files, so a new import that breaks the rule fails `cargo test`.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The code of `text` with comments dropped (line comments, doc comments) and whitespace
/// removed, so that `crate :: http` or a path split over lines is still found.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The Eyrie modules `text` names through `crate::` (`crate::http::x`, `crate::{http, base}`),
/// or `super::` from a top-level file.
fn crate_modules(text: &str, top_level: bool) -> Vec<String> {
    let code = code(text);
    let mut found = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut roots = vec!["crate::"];
    if top_level {
        roots.push("super::");
    }
    for root in roots {
        for (i, _) in code.match_indices(root) {
            let rest = &code[i + root.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // A group: each item at depth 0 starts with a module name.
                let mut depth = 0;
                let mut item_start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        _ if item_start => {
                            found.push(ident(&group[j..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                found.push(ident(rest));
            }
        }
    }
    found
}

#[test]
fn the_finder_sees_every_form_of_import() {
    let m = |t: &str| crate_modules(t, false);
    assert_eq!(m("use crate::http::ApiError;"), ["http"]);
    assert_eq!(m("let x = crate ::\n  http::origin_of(h);"), ["http"]);
    assert_eq!(
        m("use crate::{base::hex, http::{self, AppState}};"),
        ["base", "http"]
    );
    assert!(m("// crate::http in a comment\n/// or crate::http in docs").is_empty());
    assert_eq!(crate_modules("use super::http;", true), ["http"]);
    assert!(crate_modules("use super::http;", false).is_empty());
}

#[test]
fn nothing_but_main_imports_http_and_base_imports_nothing() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for path in rust_files(&src) {
        let rel = path.strip_prefix(&src).unwrap();
        if rel == Path::new("layers.rs") {
            // This file, whose test strings name crate::http.
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let top_level = rel.components().count() == 1;
        let used = crate_modules(&text, top_level);
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let first = first.trim_end_matches(".rs");
        let may_use_http = matches!(first, "http" | "main" | "cmd" | "fuzzing");
        if !may_use_http && used.iter().any(|m| m == "http") {
            broken.push(format!("{} imports crate::http", rel.display()));
        }
        if first == "base" {
            for m in used.iter().filter(|m| *m != "base") {
                broken.push(format!("{} (base) imports crate::{m}", rel.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the dependency rule (base ← domain modules ← http ← main) is broken:\n{}",
        broken.join("\n")
    );
}
