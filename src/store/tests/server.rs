//! A tiny HTTP/1.1 server on loopback for the downloader tests. It serves a
//! bounded number of connections, gives up after a deadline, and records
//! every request's path and headers.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a path is answered.
#[derive(Clone)]
pub(crate) enum Route {
    /// 200 with the body, or 206 for `Range: bytes=N-`.
    Body(Vec<u8>),
    /// Without `Range`: promises the whole body, sends half, closes. With
    /// `Range`: a correct 206.
    TruncateUnlessRange(Vec<u8>),
    /// A bare status with a short body.
    Status(u16),
    /// 302 to this absolute URL.
    Redirect(String),
}

/// One received request.
#[derive(Clone, Debug)]
pub(crate) struct Logged {
    pub path: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
}

pub(crate) struct Server {
    pub base: String,
    log: Arc<Mutex<Vec<Logged>>>,
}

impl Server {
    /// Binds `ip:0` and serves at most `max_conns` connections within 20 s.
    pub(crate) fn start(ip: &str, routes: Vec<(String, Route)>, max_conns: usize) -> Server {
        let listener = TcpListener::bind((ip, 0)).expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let log = Arc::new(Mutex::new(Vec::new()));
        let routes: BTreeMap<String, Route> = routes.into_iter().collect();
        let thread_log = Arc::clone(&log);
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut served = 0;
            while served < max_conns && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        let _ = handle(stream, &routes, &thread_log);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { base: format!("http://{ip}:{port}"), log }
    }

    pub(crate) fn log(&self) -> Vec<Logged> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn handle(mut s: TcpStream, routes: &BTreeMap<String, Route>, log: &Mutex<Vec<Logged>>) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    for l in lines.take_while(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let range = headers.get("range").and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-')).and_then(|r| r.parse::<usize>().ok());
    if let Ok(mut l) = log.lock() {
        l.push(Logged { path: path.clone(), headers });
    }
    match routes.get(&path) {
        None => reply(&mut s, 404, &[], b"no such route"),
        Some(Route::Status(code)) => reply(&mut s, *code, &[], b"status"),
        Some(Route::Redirect(to)) => reply(&mut s, 302, &[("Location", to.as_str())], b""),
        Some(Route::Body(body)) => ranged(&mut s, body, range),
        Some(Route::TruncateUnlessRange(body)) => match range {
            Some(_) => ranged(&mut s, body, range),
            None => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                s.write_all(head.as_bytes())?;
                s.write_all(&body[..body.len() / 2])?;
                s.flush()
            }
        },
    }
}

fn ranged(s: &mut TcpStream, body: &[u8], range: Option<usize>) -> std::io::Result<()> {
    match range {
        Some(start) if start >= body.len() => reply(s, 416, &[], b""),
        Some(start) => {
            let cr = format!("bytes {}-{}/{}", start, body.len() - 1, body.len());
            reply(s, 206, &[("Content-Range", cr.as_str())], &body[start..])
        }
        None => reply(s, 200, &[], body),
    }
}

fn reply(s: &mut TcpStream, code: u16, extra: &[(&str, &str)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()
}
