//! A minimal HTTP/1.1 client for tests and benchmarks: one request at a time on a
//! stream that stays open (keep-alive); answers with `Content-Length` or chunked bodies.
//! Not for the product (which uses hyper): for driving it from outside.

use std::io::{Read, Write};

/// One HTTP/1.1 exchange on `stream` (which stays open for the next one): `head` is the
/// request line and any headers (without the final blank line; `Host` and
/// `Content-Length` are added). Returns the status, the headers (names lower-cased) and
/// the body. Panics on a malformed or cut answer.
pub fn exchange(
    stream: &mut (impl Read + Write),
    head: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = format!(
        "{head}\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.write_all(&req).unwrap();
    let mut reader = Reader {
        stream,
        buf: Vec::with_capacity(16 * 1024),
        pos: 0,
    };
    let head = reader.until(b"\r\n\r\n");
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut out = Vec::new();
    if let Some(len) = get("content-length") {
        out = reader.exact(len.parse().unwrap());
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let line = reader.until(b"\r\n");
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap();
            let chunk = reader.exact(size + 2);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..size]);
        }
    }
    assert_eq!(reader.pos, reader.buf.len(), "bytes after the response");
    (status, headers, out)
}

struct Reader<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: Read> Reader<'_, S> {
    fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed early");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The bytes up to `end` (which is consumed, not returned).
    fn until(&mut self, end: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf[self.pos..]
                .windows(end.len())
                .position(|w| w == end)
            {
                let out = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + end.len();
                return out;
            }
            self.fill();
        }
    }

    fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() - self.pos < n {
            self.fill();
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }
}
