//! A minimal HTTP/1.1 client connection: one request at a time on a kept-alive TCP stream.
//!
//! It only talks to our own server, so it reads exactly what HTTP/1.1 servers send back to a
//! plain request: a status line, headers, and a body framed by `Content-Length` or chunked
//! transfer encoding. The body is read and thrown away, or kept when asked (`--sum-field`).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEADERS: usize = 64;
const MAX_HEAD_BYTES: usize = 64 * 1024;

pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Keep the last response's body in `body`.
    pub keep_body: bool,
    pub body: Vec<u8>,
}

/// What a response said: its status, and whether the server closes the connection after it.
pub struct Response {
    pub status: u16,
    pub close: bool,
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            keep_body: false,
            body: Vec::new(),
        })
    }

    /// Writes one complete request and reads its whole response.
    pub async fn round_trip(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        loop {
            let (head_len, status, framing, close) = loop {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = parsed.code.unwrap_or(0);
                        let (framing, close) = framing(status, parsed.version, parsed.headers)?;
                        break (len, status, framing, close);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.start >= MAX_HEAD_BYTES {
                            return Err(invalid("response head too large"));
                        }
                        self.fill().await?;
                    }
                    Err(e) => return Err(invalid(&format!("bad response: {e}"))),
                }
            };
            self.start += head_len;
            self.body.clear();
            let close = match framing {
                Framing::Length(len) => {
                    self.skip(len).await?;
                    close
                }
                Framing::Chunked => {
                    self.skip_chunked().await?;
                    close
                }
                Framing::UntilClose => {
                    while self.fill_or_eof().await? {}
                    true
                }
            };
            self.compact();
            // An interim 1xx answer is followed by the real one.
            if !(100..200).contains(&status) {
                return Ok(Response { status, close });
            }
        }
    }

    /// Discards `len` body bytes.
    async fn skip(&mut self, mut len: usize) -> io::Result<()> {
        loop {
            let have = (self.end - self.start).min(len);
            if self.keep_body {
                self.body
                    .extend_from_slice(&self.buf[self.start..self.start + have]);
            }
            self.start += have;
            len -= have;
            if len == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err(invalid("bad chunk size")),
                }
            };
            if size == 0 {
                // No trailers from our server: the final CRLF follows.
                return self.skip_unkept(2).await;
            }
            let size = usize::try_from(size).map_err(|_| invalid("chunk too large"))?;
            self.skip(size).await?;
            self.skip_unkept(2).await?;
        }
    }

    /// Discards `len` bytes of framing, never kept.
    async fn skip_unkept(&mut self, len: usize) -> io::Result<()> {
        let keep = std::mem::replace(&mut self.keep_body, false);
        let done = self.skip(len).await;
        self.keep_body = keep;
        done
    }

    /// Reads more bytes; the end of the stream here is an error.
    async fn fill(&mut self) -> io::Result<()> {
        if self.fill_or_eof().await? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ))
        }
    }

    /// Reads more bytes; false at the end of the stream.
    async fn fill_or_eof(&mut self) -> io::Result<bool> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.compact();
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }

    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

fn framing(
    status: u16,
    version: Option<u8>,
    headers: &[httparse::Header],
) -> io::Result<(Framing, bool)> {
    let mut length = None;
    let mut chunked = false;
    let mut close = version == Some(0);
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| invalid("bad content-length"))?;
            length = Some(
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| invalid("bad content-length"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value.trim_ascii();
            if v.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if v.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(len) = length {
        Framing::Length(len)
    } else {
        Framing::UntilClose
    };
    Ok((framing, close))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}
