//! A raw HTTP/2 client that writes frames by hand, as an attacker would: it opens as many
//! streams as it likes, whatever the server advertises, and never reads a response body.
//! A thread reads the server's frames, acknowledges SETTINGS and PING (so the connection
//! stays up) and counts what the server answered.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const REFUSED_STREAM: u32 = 0x7;

/// What the server sent back.
#[derive(Default)]
pub struct Answers {
    /// Streams the server ended with a HEADERS frame (a trailers-only gRPC answer).
    pub ended_by_headers: AtomicUsize,
    /// RST_STREAM frames, and among them REFUSED_STREAM (over MAX_CONCURRENT_STREAMS).
    pub resets: AtomicUsize,
    pub refused: AtomicUsize,
    pub goaway: AtomicUsize,
    /// PINGs from the server, each acknowledged.
    pub pings: AtomicUsize,
    /// Responses begun (HEADERS without END_STREAM): answers with a body to come.
    pub started: AtomicUsize,
    /// The server closed the connection (or it failed).
    pub closed: AtomicBool,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, when it sent one.
    pub max_concurrent_streams: AtomicUsize,
    /// Streams answered one way or the other (by trailers, a reset, or both).
    answered: Mutex<std::collections::HashSet<u32>>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers")
            .field("answered", &self.answered())
            .field("ended_by_headers", &self.ended_by_headers)
            .field("resets", &self.resets)
            .field("refused", &self.refused)
            .field("goaway", &self.goaway)
            .field("started", &self.started)
            .field("pings", &self.pings)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Answers {
    /// Streams answered one way or the other.
    pub fn answered(&self) -> usize {
        self.answered.lock().expect("answered").len()
    }
}

pub struct RawH2 {
    writer: Arc<Mutex<TcpStream>>,
    pub answers: Arc<Answers>,
    next_stream: u32,
}

impl RawH2 {
    pub fn connect(addr: SocketAddr) -> io::Result<RawH2> {
        RawH2::connect_with_settings(addr, &[])
    }

    /// Advertising an initial stream window of 0: the server may send headers but no
    /// response body, as a client that never reads would make it.
    pub fn connect_never_reading(addr: SocketAddr) -> io::Result<RawH2> {
        const INITIAL_WINDOW_SIZE: u16 = 0x4;
        RawH2::connect_with_settings(addr, &[(INITIAL_WINDOW_SIZE, 0)])
    }

    fn connect_with_settings(addr: SocketAddr, settings: &[(u16, u32)]) -> io::Result<RawH2> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut reader = stream.try_clone()?;
        let writer = Arc::new(Mutex::new(stream));
        {
            let mut w = writer.lock().expect("writer");
            w.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
            let mut payload = Vec::new();
            for (id, value) in settings {
                payload.extend_from_slice(&id.to_be_bytes());
                payload.extend_from_slice(&value.to_be_bytes());
            }
            w.write_all(&frame(SETTINGS, 0, 0, &payload))?;
        }
        let answers = Arc::new(Answers::default());
        let (acks, seen) = (writer.clone(), answers.clone());
        std::thread::spawn(move || {
            let _ = read_frames(&mut reader, &acks, &seen);
            seen.closed.store(true, Ordering::SeqCst);
        });
        Ok(RawH2 {
            writer,
            answers,
            next_stream: 1,
        })
    }

    /// Opens a stream to `path` with `headers`, sends a gRPC prefix declaring
    /// `declared` bytes and `body` bytes after it, and leaves the stream open.
    pub fn open_stream(&mut self, path: &str, headers: &[(&str, &str)], declared: u32, body: usize) -> io::Result<()> {
        let mut data = vec![0u8];
        data.extend_from_slice(&declared.to_be_bytes());
        data.resize(5 + body, 0xAB);
        self.send(path, headers, &data, false)
    }

    /// A whole unary call: `message` (an encoded protobuf) in one gRPC frame, and the
    /// end of the request.
    pub fn call(&mut self, path: &str, headers: &[(&str, &str)], message: &[u8]) -> io::Result<()> {
        let mut data = vec![0u8];
        data.extend_from_slice(&(message.len() as u32).to_be_bytes());
        data.extend_from_slice(message);
        self.send(path, headers, &data, true)
    }

    fn send(&mut self, path: &str, headers: &[(&str, &str)], data: &[u8], end: bool) -> io::Result<()> {
        let id = self.next_stream;
        self.next_stream += 2;
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        .iter()
        .chain(headers)
        {
            literal(&mut block, name, value);
        }
        let mut w = self.writer.lock().expect("writer");
        w.write_all(&frame(HEADERS, END_HEADERS, id, &block))?;
        let chunks: Vec<&[u8]> = data.chunks(16_384).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let flags = if end && i + 1 == chunks.len() { END_STREAM } else { 0 };
            w.write_all(&frame(DATA, flags, id, chunk))?;
        }
        Ok(())
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK "literal header field without indexing, new name", no Huffman coding.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    for s in [name, value] {
        integer(out, s.len(), 7);
        out.extend_from_slice(s.as_bytes());
    }
}

fn integer(out: &mut Vec<u8>, mut n: usize, prefix_bits: u32) {
    let max = (1usize << prefix_bits) - 1;
    if n < max {
        out.push(n as u8);
        return;
    }
    out.push(max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128 + 128) as u8);
        n /= 128;
    }
    out.push(n as u8);
}

fn read_frames(reader: &mut TcpStream, writer: &Mutex<TcpStream>, seen: &Answers) -> io::Result<()> {
    loop {
        let mut head = [0u8; 9];
        reader.read_exact(&mut head)?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5] & 0x7f, head[6], head[7], head[8]]);
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload)?;
        match kind {
            SETTINGS if flags & ACK == 0 => {
                for setting in payload.chunks_exact(6) {
                    if u16::from_be_bytes([setting[0], setting[1]]) == 0x3 {
                        let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                        seen.max_concurrent_streams.store(value as usize, Ordering::SeqCst);
                    }
                }
                writer
                    .lock()
                    .expect("writer")
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))?;
            }
            PING if flags & ACK == 0 => {
                seen.pings.fetch_add(1, Ordering::SeqCst);
                writer
                    .lock()
                    .expect("writer")
                    .write_all(&frame(PING, ACK, 0, &payload))?;
            }
            HEADERS if flags & END_STREAM != 0 => {
                seen.ended_by_headers.fetch_add(1, Ordering::SeqCst);
                seen.answered.lock().expect("answered").insert(stream);
            }
            HEADERS => {
                seen.started.fetch_add(1, Ordering::SeqCst);
            }
            RST_STREAM => {
                seen.resets.fetch_add(1, Ordering::SeqCst);
                seen.answered.lock().expect("answered").insert(stream);
                if payload.len() == 4
                    && u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) == REFUSED_STREAM
                {
                    seen.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
            GOAWAY => {
                seen.goaway.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}
