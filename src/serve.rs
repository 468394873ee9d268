//! `medseg serve`: a small static-file HTTP/1.1 server for the browser app.
//!
//! Native only. GET and HEAD, one request per connection (`Connection: close`). It listens
//! on the loopback interface only and never serves a file outside its root: paths with a
//! `..` or hidden (`.name`) component are refused, and every path is canonicalised
//! (symbolic links resolved) and checked to stay under the canonical root. Directories
//! serve their `index.html`; there are no listings, but for one: `/models.json` (when the
//! root has no such file) lists the model files in `weights/`, so that the page's model
//! picker offers only models that are there.
//!
//! Every response carries `Cache-Control: no-cache` (the app and the weights change while
//! developing) and the cross-origin isolation headers (COOP/COEP), so the page may use
//! `SharedArrayBuffer` and precise timers. Files carry an `ETag` (size and modification
//! time) and a request whose `If-None-Match` names it gets `304 Not Modified`: the
//! browser revalidates its copy of the 34 MB engine in one round trip.
//!
//! # Bounds
//!
//! Connections are tasks on a tokio runtime of two worker threads, so an idle or slow
//! client costs a socket and a few hundred bytes, not a thread (one thread per connection
//! took 8.6 s to answer behind 3,300 idle ones). [`ServeOptions`] holds the bounds:
//!
//! - at most `max_connections` (4,096) connections at once. At the cap a new connection
//!   closes the oldest one that has not sent its request head yet, so idle clients, however
//!   many, cannot keep a real request out. Where every connection is being answered, the
//!   new one waits for a slot and, since nothing is accepted meanwhile, later ones wait in
//!   the kernel's listen backlog ([`bind`] makes it 1,024 long) rather than being closed
//!   unanswered; answers end within the write timeout of a stalled client. The cap is
//!   lowered where the open-file limit would not allow it (each connection takes a
//!   socket, and a file while it is answered); the server first raises its soft limit
//!   toward the hard one, and says so when it stays too low.
//! - the whole request head within `head_timeout` (20 s) of the connection being
//!   accepted, however it trickles in (slowloris), and at most [`MAX_HEAD`] bytes. A
//!   client that sends nothing in time is closed without an answer. 20 s as Apache's
//!   `RequestReadTimeout header=20`: longer than Chromium keeps an unused preconnected
//!   socket (10 s), so the browser gives up such a socket before the server closes it.
//! - every write of the response makes progress within `write_timeout` (30 s): a client
//!   that stops reading is dropped. A client that keeps reading, however slowly, keeps its
//!   slot until its file is sent.
//!
//! Files are streamed in [`FILE_CHUNK`] pieces (the engine is ~40 MB, weights hundreds),
//! so a connection holds at most one chunk. File system calls (path resolution, the
//! listing, reads) run on tokio's blocking pool, at most [`BLOCKING_THREADS`] at once.
//!
//! Why tokio alone, with the request head parsed here, and not hyper: this server answers
//! one GET or HEAD per connection and reads no bodies, so it needs an HTTP parser only
//! for a request line and one header, which the code below does in a few lines over a
//! byte buffer bounded by `MAX_HEAD`. hyper would add its keep-alive and pipelining
//! (turned off again here), answer malformed requests itself without the headers above,
//! and bring hyper-util, http-body-util and a timer adapter for the head timeout that
//! `tokio::time::timeout` gives directly. The security-relevant part, mapping a target
//! to a file, is the same code either way ([`resolve`]) and has the tests below.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Component, Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

/// The longest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// The piece of a file read and written at a time.
pub const FILE_CHUNK: usize = 64 * 1024;
/// The runtime's worker threads: they only move bytes between sockets and buffers.
const WORKER_THREADS: usize = 2;
/// The most file system calls (resolution, listing, file reads) running at once; further
/// ones queue.
pub const BLOCKING_THREADS: usize = 16;
/// File descriptors kept free of connections: stdio, the listener, the runtime's own.
const RESERVED_FDS: usize = 64;
/// Connections the kernel holds until they are accepted (Linux caps it at
/// `net.core.somaxconn`, 4,096 by default). At the connection cap they wait there.
pub const LISTEN_BACKLOG: i32 = 1024;

/// The bounds of a server (the module doc says what each protects against).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The most connections handled at once (beyond it, the oldest one still sending its
    /// head is closed, or the new one waits).
    pub max_connections: usize,
    /// How long a client has, from its connection being accepted, to send the whole
    /// request head.
    pub head_timeout: Duration,
    /// How long one write of the response (a header block or a file chunk) may take.
    pub write_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 4096,
            head_timeout: Duration::from_secs(20),
            write_timeout: Duration::from_secs(30),
        }
    }
}

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
    serve_listener(root, bind(addr)?)
}

/// A listener on `addr` whose backlog holds [`LISTEN_BACKLOG`] connections not yet
/// accepted (std's `TcpListener::bind` holds 128: a burst of connections, or a busy
/// machine that runs the accept loop late, overflows it, and each connection dropped
/// there retries only after a second).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std does on Unix: a restarted server may bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Serves the files under `root` on an already bound listener (tests bind port 0), with
/// the default bounds.
pub fn serve_listener(root: &Path, listener: TcpListener) -> io::Result<()> {
    serve_listener_with(root, listener, &ServeOptions::default())
}

/// Serves the files under `root` on an already bound listener, within `options`' bounds.
pub fn serve_listener_with(
    root: &Path,
    listener: TcpListener,
    options: &ServeOptions,
) -> io::Result<()> {
    let root =
        Arc::new(root.canonicalize().map_err(|e| {
            io::Error::new(e.kind(), format!("serve root {}: {e}", root.display()))
        })?);
    let local = listener.local_addr()?;
    let options = ServeOptions {
        max_connections: connection_limit(options.max_connections),
        ..options.clone()
    };
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("medseg-serve")
        .enable_io()
        .enable_time()
        .build()?;
    eprintln!("medseg: serving {} at http://{local}/", root.display());
    runtime.block_on(accept_loop(root, listener, options))
}

/// Accepts connections and answers each in its own task, within `options.max_connections`.
async fn accept_loop(
    root: Arc<PathBuf>,
    listener: TcpListener,
    options: ServeOptions,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let options = Arc::new(options);
    let heads = Arc::new(HeadsAwaited::default());
    let mut next_id: u64 = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("medseg serve: accept: {e}");
                if out_of_resources(&e) {
                    // Out of descriptors or memory: retrying at once would spin; a
                    // connection ending frees one.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // At the cap: the connection that has waited longest for its head makes
                // room. Where every connection is being answered, this one waits for a
                // slot and, since nothing is accepted meanwhile, the next ones wait in
                // the listen backlog.
                heads.evict_oldest();
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return Ok(()); // the semaphore is never closed
                };
                slot
            }
        };
        let awaited = heads.insert(next_id);
        next_id += 1;
        let root = Arc::clone(&root);
        let options = Arc::clone(&options);
        tokio::spawn(async move {
            if let Err(e) = handle(root, stream, &options, awaited).await {
                // A client that goes away mid-response is not an error worth more.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) {
                    eprintln!("medseg serve: {peer}: {e}");
                }
            }
            drop(slot);
        });
    }
}

/// The connections whose request head has not come yet, by age (accept order), each with
/// the signal that closes it.
#[derive(Default)]
struct HeadsAwaited(Mutex<BTreeMap<u64, Arc<Notify>>>);

impl HeadsAwaited {
    fn map(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        // The map stays consistent across a panic (single inserts and removes).
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(self: &Arc<Self>, id: u64) -> HeadAwaited {
        let evict = Arc::new(Notify::new());
        self.map().insert(id, Arc::clone(&evict));
        HeadAwaited {
            id,
            evict,
            heads: Arc::clone(self),
        }
    }

    /// Closes the oldest connection still sending its head, if any.
    fn evict_oldest(&self) {
        if let Some((_, evict)) = self.map().pop_first() {
            // Stored if that task is not waiting yet: it stops at its next poll.
            evict.notify_one();
        }
    }
}

/// A connection's entry in [`HeadsAwaited`], removed when dropped.
struct HeadAwaited {
    id: u64,
    evict: Arc<Notify>,
    heads: Arc<HeadsAwaited>,
}

impl Drop for HeadAwaited {
    fn drop(&mut self) {
        self.heads.map().remove(&self.id);
    }
}

/// An accept error that a retry at once would meet again (EMFILE, ENFILE, ENOBUFS, ENOMEM).
fn out_of_resources(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        e.kind() == io::ErrorKind::OutOfMemory
    }
}

/// The connections to serve at once: `wanted`, or fewer where the open-file limit would
/// not allow them after raising it (each takes a socket, and a file while it is answered).
fn connection_limit(wanted: usize) -> usize {
    let wanted = wanted.max(1);
    let needed = wanted.saturating_mul(2).saturating_add(RESERVED_FDS);
    match raise_open_file_limit(needed) {
        Some(limit) if limit < needed => {
            let cap = (limit.saturating_sub(RESERVED_FDS) / 2).max(1);
            eprintln!(
                "medseg serve: the open-file limit is {limit} and cannot be raised to \
                 {needed} (ulimit -Hn): at most {cap} connections at once instead of {wanted}"
            );
            cap
        }
        _ => wanted,
    }
}

/// Raises this process's soft open-file limit (RLIMIT_NOFILE) to `needed`, or to the hard
/// limit where that is lower; returns the soft limit then, or `None` where it is unknown.
#[cfg(unix)]
pub(crate) fn raise_open_file_limit(needed: usize) -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let as_usize = |n: libc::rlim_t| usize::try_from(n).unwrap_or(usize::MAX);
    let needed_rlim = needed as libc::rlim_t;
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= needed_rlim {
        return Some(as_usize(limit.rlim_cur));
    }
    let raised = libc::rlimit {
        rlim_cur: needed_rlim.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given; a soft limit at most the hard
    // one needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        Some(as_usize(raised.rlim_cur))
    } else {
        Some(as_usize(limit.rlim_cur))
    }
}

#[cfg(not(unix))]
pub(crate) fn raise_open_file_limit(_needed: usize) -> Option<usize> {
    None
}

/// Reads one request from `stream` and answers it, unless the server closes it first
/// (`awaited`) to make room while it has not sent its head.
async fn handle(
    root: Arc<PathBuf>,
    mut stream: TcpStream,
    options: &ServeOptions,
    awaited: HeadAwaited,
) -> io::Result<()> {
    let head = {
        let mut read = pin!(tokio::time::timeout(
            options.head_timeout,
            read_head(&mut stream)
        ));
        let mut evicted = pin!(awaited.evict.notified());
        std::future::poll_fn(|cx| {
            if evicted.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            read.as_mut().poll(cx).map(Some)
        })
        .await
    };
    drop(awaited);
    // Evicted, or idle or too slow: closed unanswered.
    let Some(Ok(head)) = head else {
        return Ok(());
    };
    let (head, complete) = head?;
    if head.is_empty() {
        return Ok(()); // closed before sending anything
    }
    let response = tokio::task::spawn_blocking(move || answer(&root, &head, complete))
        .await
        .map_err(io::Error::other)?;
    send(&mut stream, response, options.write_timeout).await
}

/// Reads the request head, up to and including the empty line that ends it, and at most
/// `MAX_HEAD` bytes: (bytes, whether that empty line came). Bytes after it (a body the
/// server does not read) may be dropped.
async fn read_head<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<(Vec<u8>, bool)> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut line_start = 0;
    loop {
        let room = MAX_HEAD - head.len();
        if room == 0 {
            return Ok((head, false));
        }
        let want = room.min(chunk.len());
        let n = reader.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok((head, false));
        }
        let scanned = head.len();
        head.extend_from_slice(&chunk[..n]);
        for i in scanned..head.len() {
            if head[i] != b'\n' {
                continue;
            }
            let line = &head[line_start..i];
            // An empty line after the request line ends the head.
            if line_start > 0 && (line.is_empty() || line == b"\r") {
                head.truncate(i + 1);
                return Ok((head, true));
            }
            line_start = i + 1;
        }
    }
}

/// What to send: the status line and headers, then the body.
struct Response {
    head: String,
    body: Body,
}

enum Body {
    None,
    Bytes(Vec<u8>),
    /// The first `len` bytes of a file (its length when the head was made).
    File(File, u64),
}

/// The answer to a request `head` (`complete`: its closing empty line came). Blocking:
/// it resolves paths and opens files.
fn answer(root: &Path, head: &[u8], complete: bool) -> Response {
    let Ok(head) = std::str::from_utf8(head) else {
        return error_response(400, "Bad Request", true);
    };
    let mut lines = head.split('\n');
    let line = lines.next().unwrap_or("");
    // Of the headers only If-None-Match changes the answer (the last one, if repeated).
    let if_none_match = lines
        .filter_map(|header| {
            let (name, value) = header.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("if-none-match")
                .then(|| value.trim())
        })
        .next_back();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version), true) =
        (parts.next(), parts.next(), parts.next(), complete)
    else {
        return error_response(400, "Bad Request", true);
    };
    if !version.starts_with("HTTP/1.") {
        return error_response(505, "HTTP Version Not Supported", true);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return error_response(405, "Method Not Allowed", false),
    };
    if target.split(['?', '#']).next() == Some(MODEL_LISTING) && !root.join("models.json").exists()
    {
        let body = model_listing(root);
        return Response {
            head: format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{COMMON_HEADERS}\r\n",
                body.len()
            ),
            body: if head_only {
                Body::None
            } else {
                Body::Bytes(body.into_bytes())
            },
        };
    }
    let path = match resolve(root, target) {
        Ok(p) => p,
        Err(status) => return error_response(status, reason(status), head_only),
    };
    let Ok((file, meta)) = File::open(&path).and_then(|f| {
        let meta = f.metadata()?;
        Ok((f, meta))
    }) else {
        return error_response(404, "Not Found", head_only);
    };
    let len = meta.len();
    let etag = etag(len, meta.modified().ok());
    let matches = if_none_match.is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag)
    });
    if matches {
        return Response {
            head: format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n{COMMON_HEADERS}\r\n"),
            body: Body::None,
        };
    }
    Response {
        head: format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\nETag: {etag}\r\n{}\r\n",
            content_type(&path),
            COMMON_HEADERS
        ),
        body: if head_only {
            Body::None
        } else {
            Body::File(file, len)
        },
    }
}

/// Writes `response`; each write must finish within `timeout`.
async fn send(stream: &mut TcpStream, response: Response, timeout: Duration) -> io::Result<()> {
    write_within(stream, response.head.as_bytes(), timeout).await?;
    match response.body {
        Body::None => Ok(()),
        Body::Bytes(bytes) => write_within(stream, &bytes, timeout).await,
        Body::File(file, len) => {
            // Read on the blocking pool, one chunk at a time: the buffer and the file go
            // there and come back, so the connection holds one chunk.
            let mut file = file.take(len);
            let mut buf = vec![0u8; FILE_CHUNK];
            loop {
                let (read, f, b) = tokio::task::spawn_blocking(move || {
                    let read = file.read(&mut buf);
                    (read, file, buf)
                })
                .await
                .map_err(io::Error::other)?;
                (file, buf) = (f, b);
                let n = read?;
                if n == 0 {
                    // The Content-Length sent, or less where the file shrank meanwhile:
                    // the client sees a short body either way.
                    return Ok(());
                }
                write_within(stream, &buf[..n], timeout).await?;
            }
        }
    }
}

async fn write_within(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> io::Result<()> {
    match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "a write of {} bytes did not finish in {} s (the client reads too slowly \
                 or not at all); dropped",
                bytes.len(),
                timeout.as_secs_f32()
            ),
        )),
    }
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

fn error_response(status: u16, reason: &str, head_only: bool) -> Response {
    let body = format!("{status} {reason}\n");
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    Response {
        head: format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n{allow}{COMMON_HEADERS}\r\n",
            body.len()
        ),
        body: if head_only {
            Body::None
        } else {
            Body::Bytes(body.into_bytes())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

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
        start_with(tmp, ServeOptions::default())
    }

    /// [`start`] within other bounds.
    fn start_with(tmp: &TempDir, options: ServeOptions) -> SocketAddr {
        let site = tmp.0.join("site");
        std::fs::create_dir_all(site.join("pkg")).unwrap();
        std::fs::create_dir_all(site.join(".git")).unwrap();
        std::fs::write(site.join("index.html"), "<!doctype html>hi").unwrap();
        std::fs::write(site.join("pkg/medseg_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(site.join("a b.json"), "{}").unwrap();
        std::fs::write(site.join(".git/config"), "hidden").unwrap();
        std::fs::write(tmp.0.join("secret.txt"), "secret").unwrap();
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve_listener_with(&site, listener, &options));
        addr
    }

    /// Sends a raw request; returns (status, headers, body).
    fn request(addr: SocketAddr, raw: &str) -> (u16, String, Vec<u8>) {
        request_bytes(addr, raw.as_bytes())
    }

    fn request_bytes(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw).unwrap();
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

    #[test]
    fn large_files_are_streamed_whole() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        // Several chunks and a partial one.
        let data: Vec<u8> = (0..3 * FILE_CHUNK + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(tmp.0.join("site/pkg/big.safetensors"), &data).unwrap();
        let (status, head, body) = get(addr, "/pkg/big.safetensors");
        assert_eq!(status, 200, "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", data.len())),
            "{head}"
        );
        assert!(body == data, "the body differs from the file");
    }

    #[test]
    fn bad_heads_are_400() {
        let tmp = TempDir::new();
        let addr = start(&tmp);
        assert_eq!(
            request_bytes(addr, b"GET /\xff HTTP/1.1\r\n\r\n").0,
            400,
            "not UTF-8"
        );
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 400 "), "a head cut short");
        // MAX_HEAD bytes without the closing empty line: the server reads them all (so
        // that closing sends no reset) and answers.
        let mut long = b"GET /".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert_eq!(
            request_bytes(addr, &long).0,
            400,
            "a head of MAX_HEAD bytes, unended"
        );
    }

    /// The issue's load test: with 1,000 idle connections open (half of them part way
    /// through a request line), a real request is still answered at once. The figure is
    /// printed (`cargo test --lib serve::tests::load -- --nocapture`;
    /// `MEDSEG_SERVE_IDLE=N` for another count); the bound asserted is loose so that a
    /// busy machine does not fail it.
    #[test]
    fn load_1000_idle_connections() {
        let idle_count = std::env::var("MEDSEG_SERVE_IDLE")
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(1000);
        // Both ends of each connection are in this process.
        let needed = idle_count.saturating_mul(2).saturating_add(256);
        match raise_open_file_limit(needed) {
            Some(limit) if limit < needed => {
                eprintln!(
                    "SKIPPED serve load test: the open-file limit is {limit} and the hard \
                     limit allows no more; it needs {needed} (ulimit -Hn)"
                );
                return;
            }
            _ => {}
        }
        let tmp = TempDir::new();
        let addr = start(&tmp);
        let t0 = Instant::now();
        let idle: Vec<TcpStream> = (0..idle_count)
            .map(|i| {
                let mut s = TcpStream::connect(addr).unwrap();
                if i % 2 == 1 {
                    s.write_all(b"GET /index.html HT").unwrap();
                }
                s
            })
            .collect();
        eprintln!(
            "serve load: {idle_count} idle connections opened in {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        // Let the server accept them all, so that the requests below queue behind none.
        std::thread::sleep(Duration::from_millis(200));

        let mut latencies = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let (status, head, body) = get(addr, "/index.html");
            latencies.push(t.elapsed());
            assert_eq!(status, 200, "{head}");
            assert_eq!(body, b"<!doctype html>hi");
        }
        let worst = latencies.iter().max().copied().unwrap_or_default();
        eprintln!(
            "serve load: with {idle_count} idle connections open, GET answered in {:.2} ms (first), \
             {:.2} ms (worst of {})",
            latencies[0].as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3,
            latencies.len()
        );
        assert!(worst < Duration::from_secs(10), "{worst:?}");

        // The idle connections were still open all along (the head timeout is 20 s), but
        // for those closed to make room beyond the connection cap.
        let still_open = idle
            .into_iter()
            .filter(|s| {
                s.set_nonblocking(true).unwrap();
                let mut byte = [0u8; 1];
                matches!((&*s).read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            })
            .count();
        eprintln!("serve load: {still_open} of the {idle_count} idle connections still open");
        let cap = ServeOptions::default().max_connections;
        if idle_count + latencies.len() <= cap {
            assert_eq!(still_open, idle_count, "idle connections were closed early");
        }
    }

    /// A client that trickles its head (a byte every 50 ms, never the empty line) is
    /// closed once the head timeout has passed since it connected: the timeout is for
    /// the whole head, not for each read.
    #[test]
    fn a_trickled_head_is_dropped_after_the_head_timeout() {
        let tmp = TempDir::new();
        let head_timeout = Duration::from_millis(500);
        let addr = start_with(
            &tmp,
            ServeOptions {
                head_timeout,
                ..ServeOptions::default()
            },
        );
        let t0 = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s.write_all(b"GET /index.html HTTP/1.1\r\n").unwrap();
        let mut received = Vec::new();
        let closed_after = loop {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "still open after 10 s"
            );
            if s.write_all(b"x").is_err() {
                break t0.elapsed();
            }
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => break t0.elapsed(),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break t0.elapsed(), // reset: it had unread bytes
            }
        };
        eprintln!("serve: a trickled head was dropped after {closed_after:?}");
        assert!(closed_after >= head_timeout, "{closed_after:?}");
        assert!(received.is_empty(), "no answer: {received:?}");
        // The server goes on.
        assert_eq!(get(addr, "/index.html").0, 200);
    }

    /// At the connection cap, a new connection closes the oldest one that has not sent
    /// its head: idle connections cannot keep a real request out, even beyond the cap.
    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let tmp = TempDir::new();
        let addr = start_with(
            &tmp,
            ServeOptions {
                max_connections: 2,
                ..ServeOptions::default()
            },
        );
        let mut oldest = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100)); // accepted first
        let mut newer = TcpStream::connect(addr).unwrap();
        newer.write_all(b"GET /index.html HT").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        let (status, _, body) = get(addr, "/index.html");
        let waited = t0.elapsed();
        eprintln!("serve: at the cap of 2 idle connections, a request took {waited:?}");
        assert_eq!(
            (status, body.as_slice()),
            (200, b"<!doctype html>hi".as_slice())
        );
        // Far below the 20 s head timeout that would otherwise free a slot.
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        let mut byte = [0u8; 1];
        oldest
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let read = oldest.read(&mut byte);
        assert!(
            matches!(read, Ok(0))
                || matches!(&read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "the oldest connection is closed unanswered: {read:?}"
        );
        newer.set_nonblocking(true).unwrap();
        assert!(
            matches!(newer.read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "the newer one is still open"
        );
        // Its head completed, it is answered.
        newer.set_nonblocking(false).unwrap();
        newer.write_all(b"TP/1.1\r\n\r\n").unwrap();
        let mut resp = Vec::new();
        newer.read_to_end(&mut resp).unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 200 OK"));
    }

    /// At the cap with every connection being answered, a new one waits for a slot: here
    /// until the write timeout drops a client that reads nothing.
    #[test]
    fn a_client_that_reads_nothing_is_dropped_after_the_write_timeout() {
        let tmp = TempDir::new();
        let addr = start_with(
            &tmp,
            ServeOptions {
                max_connections: 1,
                write_timeout: Duration::from_millis(300),
                ..ServeOptions::default()
            },
        );
        // Bigger than the socket buffers on both ends, so that the server's writes block.
        let data = vec![7u8; 64 << 20];
        std::fs::write(tmp.0.join("site/pkg/huge.bin"), &data).unwrap();
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled
            .write_all(b"GET /pkg/huge.bin HTTP/1.1\r\n\r\n")
            .unwrap();
        // Being answered (not still sending its head, which a new connection would close).
        let mut first = [0u8; 1];
        stalled.read_exact(&mut first).unwrap();
        // With one slot, this is answered only once the stalled client is dropped.
        let t0 = Instant::now();
        assert_eq!(get(addr, "/index.html").0, 200);
        let waited = t0.elapsed();
        eprintln!("serve: a stalled reader was dropped after {waited:?}");
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        drop(stalled);
    }
}
