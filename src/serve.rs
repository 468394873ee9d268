//! `medseg serve`: a small static-file HTTP/1.1 server for the browser app.
//!
//! Native only, std only: one thread per connection, GET and HEAD, one request per
//! connection (`Connection: close`). It listens on the loopback interface only and never
//! serves a file outside its root: paths with a `..` or hidden (`.name`) component are
//! refused, and every path is canonicalised (symbolic links resolved) and checked to stay
//! under the canonical root. Directories serve their `index.html`; there are no listings,
//! but for one: `/models.json` (when the root has no such file) lists the model files in
//! `weights/`, so that the page's model picker offers only models that are there.
//!
//! Every response carries `Cache-Control: no-cache` (the app and the weights change while
//! developing) and the cross-origin isolation headers (COOP/COEP), so the page may use
//! `SharedArrayBuffer` and precise timers. Files carry an `ETag` (size and modification
//! time) and a request whose `If-None-Match` names it gets `304 Not Modified`: the
//! browser revalidates its copy of the 34 MB engine in one round trip.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The longest request head (request line and headers) accepted, in bytes.
const MAX_HEAD: u64 = 16 * 1024;
/// How long a connection may stay silent before it is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the files under `root` on `addr` until the process ends.
///
/// `addr` must be a loopback address (`127.0.0.1:PORT`): this server is for the local
/// browser only. Port 0 picks a free port; the address is printed to stderr.
pub fn serve(root: &Path, addr: SocketAddr) -> io::Result<()> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("medseg serve listens on the loopback interface only, not {addr}"),
        ));
    }
    serve_listener(root, TcpListener::bind(addr)?)
}

/// Serves the files under `root` on an already bound listener (tests bind port 0).
pub fn serve_listener(root: &Path, listener: TcpListener) -> io::Result<()> {
    let root =
        Arc::new(root.canonicalize().map_err(|e| {
            io::Error::new(e.kind(), format!("serve root {}: {e}", root.display()))
        })?);
    let local = listener.local_addr()?;
    eprintln!("medseg: serving {} at http://{local}/", root.display());
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("medseg serve: accept: {e}");
                continue;
            }
        };
        let root = Arc::clone(&root);
        std::thread::spawn(move || {
            if let Err(e) = handle(&root, stream) {
                // A client that goes away mid-response is not an error worth more.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) {
                    eprintln!("medseg serve: {e}");
                }
            }
        });
    }
    Ok(())
}

/// The `Content-Type` for a file, from its extension (case-insensitive).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "css" => "text/css; charset=utf-8",
        "txt" | "md" | "toml" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        // Weights and volumes (`.nii.gz` too: served as bytes, never as Content-Encoding).
        _ => "application/octet-stream",
    }
}

/// Reads one request from `stream` and answers it.
fn handle(root: &Path, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream).take(MAX_HEAD);

    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(()); // closed before sending anything
    }
    // Of the headers only If-None-Match changes the answer.
    let mut complete = false;
    let mut if_none_match = None;
    let mut header = String::new();
    loop {
        header.clear();
        if reader.read_line(&mut header)? == 0 {
            break;
        }
        if header == "\r\n" || header == "\n" {
            complete = true;
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_string());
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version), true) =
        (parts.next(), parts.next(), parts.next(), complete)
    else {
        return respond_error(&mut out, 400, "Bad Request", true);
    };
    if !version.starts_with("HTTP/1.") {
        return respond_error(&mut out, 505, "HTTP Version Not Supported", true);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return respond_error(&mut out, 405, "Method Not Allowed", false),
    };
    if target.split(['?', '#']).next() == Some(MODEL_LISTING) && !root.join("models.json").exists()
    {
        let body = model_listing(root);
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{COMMON_HEADERS}\r\n",
            body.len()
        )?;
        if !head_only {
            out.write_all(body.as_bytes())?;
        }
        return out.flush();
    }
    let path = match resolve(root, target) {
        Ok(p) => p,
        Err(status) => {
            let reason = reason(status);
            return respond_error(&mut out, status, reason, head_only);
        }
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(_) => return respond_error(&mut out, 404, "Not Found", head_only),
    };
    let meta = file.metadata()?;
    let len = meta.len();
    let etag = etag(len, meta.modified().ok());
    let matches = if_none_match.is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag)
    });
    if matches {
        write!(
            out,
            "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n{COMMON_HEADERS}\r\n"
        )?;
        return out.flush();
    }
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\nETag: {etag}\r\n{}\r\n",
        content_type(&path),
        COMMON_HEADERS
    )?;
    if !head_only {
        io::copy(&mut BufReader::with_capacity(1 << 16, file), &mut out)?;
    }
    out.flush()
}

/// The request path of the model listing.
const MODEL_LISTING: &str = "/models.json";

/// `{"weights": [{"file": "weights/NAME", "bytes": N}, ...]}`: the model files (.safetensors,
/// .pt, .pth; not hidden) directly in `root/weights`, by name. Made per request, so a model
/// converted while the server runs is listed on the page's next load.
fn model_listing(root: &Path) -> String {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(root.join("weights"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let model = [".safetensors", ".pt", ".pth"]
                .iter()
                .any(|ext| name.ends_with(ext));
            let meta = e.metadata().ok()?;
            (model && !name.starts_with('.') && meta.is_file()).then_some((name, meta.len()))
        })
        .collect();
    files.sort();
    let weights: Vec<_> = files
        .into_iter()
        .map(|(name, bytes)| serde_json::json!({ "file": format!("weights/{name}"), "bytes": bytes }))
        .collect();
    serde_json::json!({ "weights": weights }).to_string()
}

/// A strong validator from the file's size and modification time (nanoseconds): a rebuilt
/// or re-converted file gets a new one.
fn etag(len: u64, modified: Option<std::time::SystemTime>) -> String {
    let nanos = modified
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{nanos:x}\"")
}

// COOP/COEP make the page cross-origin isolated from its first load (SharedArrayBuffer:
// the multi-threaded engine); on other servers the app's service worker adds them.
const COMMON_HEADERS: &str = "Cache-Control: no-cache\r\n\
X-Content-Type-Options: nosniff\r\n\
Cross-Origin-Opener-Policy: same-origin\r\n\
Cross-Origin-Embedder-Policy: require-corp\r\n\
Connection: close\r\n";

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        _ => "Not Found",
    }
}

/// Maps a request target to a file under `root` (which is canonical), or an HTTP status.
fn resolve(root: &Path, target: &str) -> Result<PathBuf, u16> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(400);
    }
    let decoded = percent_decode(path).ok_or(400u16)?;
    let mut rel = PathBuf::new();
    for part in decoded.split('/').filter(|p| !p.is_empty()) {
        // `..`, `.`, and hidden files (.git, weights/.cache, ...) are never served.
        if part.starts_with('.') || part.contains('\0') || part.contains('\\') {
            return Err(403);
        }
        rel.push(part);
    }
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(403);
    }
    let mut full = root.join(&rel);
    if full.is_dir() {
        full.push("index.html");
    }
    let canonical = full.canonicalize().map_err(|_| 404u16)?;
    if !canonical.starts_with(root) {
        return Err(403); // a symbolic link out of the root
    }
    if !canonical.is_file() {
        return Err(404);
    }
    Ok(canonical)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn respond_error(
    out: &mut TcpStream,
    status: u16,
    reason: &str,
    head_only: bool,
) -> io::Result<()> {
    let body = format!("{status} {reason}\n");
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{allow}{COMMON_HEADERS}\r\n",
        body.len()
    )?;
    if !head_only {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir (removed when dropped).
    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "medseg-serve-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Starts a server on port 0 over `root/site`, with a secret file beside `site`.
    fn start(tmp: &TempDir) -> SocketAddr {
        let site = tmp.0.join("site");
        std::fs::create_dir_all(site.join("pkg")).unwrap();
        std::fs::create_dir_all(site.join(".git")).unwrap();
        std::fs::write(site.join("index.html"), "<!doctype html>hi").unwrap();
        std::fs::write(site.join("pkg/medseg_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(site.join("a b.json"), "{}").unwrap();
        std::fs::write(site.join(".git/config"), "hidden").unwrap();
        std::fs::write(tmp.0.join("secret.txt"), "secret").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve_listener(&site, listener));
        addr
    }

    /// Sends a raw request; returns (status, headers, body).
    fn request(addr: SocketAddr, raw: &str) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(resp[..split].to_vec()).unwrap();
        let body = resp[split + 4..].to_vec();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head, body)
    }

    fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
        request(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        )
    }

    #[test]
    fn serves_files_with_types_and_lengths() {
        let tmp = TempDir::new();
        let addr = start(&tmp);

        let (status, head, body) = get(addr, "/pkg/medseg_bg.wasm");
        assert_eq!(status, 200, "{head}");
        assert_eq!(body, b"\0asm\x01\0\0\0");
        assert!(head.contains("Content-Type: application/wasm"), "{head}");
        assert!(head.contains("Content-Length: 8"), "{head}");
        assert!(head.contains("Cache-Control: no-cache"), "{head}");

        let (status, head, body) = get(addr, "/");
        assert_eq!(status, 200);
        assert_eq!(body, b"<!doctype html>hi");
        assert!(head.contains("Content-Type: text/html"), "{head}");

        let (status, _, body) = get(addr, "/a%20b.json?v=1");
        assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()));

        let (status, head, body) =
            request(addr, "HEAD /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(status, 200);
        assert!(head.contains("Content-Length: 17"), "{head}");
        assert!(body.is_empty());
    }

    #[test]
    fn models_json_lists_the_model_files_in_weights() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        let (status, _, body) = get(addr, "/models.json");
        assert_eq!(status, 200);
        assert_eq!(
            body, br#"{"weights":[]}"#,
            "no weights/ folder: an empty list"
        );
        let weights = tmp.0.join("site/weights");
        std::fs::create_dir_all(weights.join(".cache")).unwrap();
        std::fs::write(weights.join("b.safetensors"), b"12345").unwrap();
        std::fs::write(weights.join("a.pt"), b"1").unwrap();
        std::fs::write(weights.join("README.md"), b"not a model").unwrap();
        std::fs::write(weights.join(".hidden.safetensors"), b"1").unwrap();
        std::fs::write(weights.join(".cache/c.pth"), b"1").unwrap();
        let (status, head, body) = get(addr, "/models.json?t=1");
        assert_eq!(status, 200);
        assert!(head.contains("Content-Type: application/json"), "{head}");
        let listing: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            listing,
            serde_json::json!({"weights": [
                {"file": "weights/a.pt", "bytes": 1},
                {"file": "weights/b.safetensors", "bytes": 5},
            ]})
        );
        // A real models.json in the root is served as it is.
        std::fs::write(tmp.0.join("site/models.json"), b"{\"weights\":[1]}").unwrap();
        assert_eq!(get(addr, "/models.json").2, br#"{"weights":[1]}"#);
    }

    #[test]
    fn etag_revalidation_answers_304_until_the_file_changes() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        let (status, head, _) = get(addr, "/pkg/medseg_bg.wasm");
        assert_eq!(status, 200);
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .expect("an ETag")
            .to_string();
        let revalidate = |tag: &str| {
            request(
                addr,
                &format!(
                    "GET /pkg/medseg_bg.wasm HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: {tag}\r\n\r\n"
                ),
            )
        };
        let (status, head, body) = revalidate(&etag);
        assert_eq!(status, 304, "{head}");
        assert!(body.is_empty());
        assert!(head.contains(&format!("ETag: {etag}")), "{head}");
        assert_eq!(revalidate(&format!("W/{etag}")).0, 304, "weak comparison");
        assert_eq!(revalidate("\"0-0\"").0, 200, "another tag");

        // A rebuilt file (other size) gets a new tag: the old one no longer matches.
        std::fs::write(tmp.0.join("site/pkg/medseg_bg.wasm"), b"\0asm\x01\0\0\0\0").unwrap();
        let (status, head, body) = revalidate(&etag);
        assert_eq!(status, 200, "{head}");
        assert_eq!(body.len(), 9);
    }

    #[test]
    fn missing_file_is_404() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        assert_eq!(get(addr, "/nope.js").0, 404);
        assert_eq!(get(addr, "/pkg/").0, 404); // a directory without index.html
    }

    #[test]
    fn traversal_and_hidden_paths_are_refused() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        for path in [
            "/../secret.txt",
            "/pkg/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/pkg/%2E%2E/%2e%2e/secret.txt",
            "/.git/config",
        ] {
            let (status, _, body) = get(addr, path);
            assert_eq!(status, 403, "{path}");
            assert!(!String::from_utf8_lossy(&body).contains("secret"), "{path}");
        }
        assert_eq!(get(addr, "/%zz").0, 400);
        assert_eq!(get(addr, "relative").0, 400);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_out_of_root_is_refused() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        std::os::unix::fs::symlink(tmp.0.join("secret.txt"), tmp.0.join("site/link.txt")).unwrap();
        assert_eq!(get(addr, "/link.txt").0, 403);
    }

    #[test]
    fn other_methods_are_405() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        let (status, head, _) = request(
            addr,
            "POST /index.html HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(status, 405);
        assert!(head.contains("Allow: GET, HEAD"), "{head}");
    }

    #[test]
    fn only_loopback() {
        let err = serve(Path::new("."), "0.0.0.0:0".parse().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn content_types() {
        for (name, ty) in [
            ("index.html", "text/html; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("worker.mjs", "text/javascript; charset=utf-8"),
            ("medseg_bg.wasm", "application/wasm"),
            ("APP.WASM", "application/wasm"),
            ("cases.json", "application/json"),
            ("style.css", "text/css; charset=utf-8"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.webp", "image/webp"),
            ("icon.svg", "image/svg+xml"),
            ("lite_medsam.safetensors", "application/octet-stream"),
            ("MedSAM2_latest.pt", "application/octet-stream"),
            ("ct.nii.gz", "application/octet-stream"),
            ("ct.nii", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), ty, "{name}");
        }
    }
}
