//! The request every connection sends, rendered once per request from a fixed head and a body
//! template in which `{n}` is a unique counter and `{client}` one of the client ids. With a
//! bodies file, request n takes the file's templates in turn (line (n - first) mod L), and
//! `{round}` is how many times the file has been gone through ((n - first) div L), so ids
//! built from it stay unique when the file is sent again.

use std::io::Write;

use clap::ValueEnum;

/// Where a request goes: `http://HOST:PORT/PATH`.
pub struct Target {
    /// `HOST:PORT` as given, for the socket address and the `Host` header.
    pub authority: String,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            authority,
            path: path.to_string(),
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Pick {
    /// Request n goes to client n mod K.
    RoundRobin,
    /// Request n goes to a client chosen by a hash of n: random-looking, but reproducible.
    Random,
}

enum Part {
    Text(Vec<u8>),
    Counter,
    Client,
    Round,
}

pub struct RequestTemplate {
    /// Request line and fixed headers, each ending with CRLF.
    head: Vec<u8>,
    /// Body templates taken in turn; none for a request without a body.
    bodies: Vec<Vec<Part>>,
    first_n: u64,
    clients: Vec<String>,
    pick: Pick,
}

/// Where the body comes from.
pub enum Bodies<'a> {
    None,
    /// One template for every request.
    Template(&'a str),
    /// Templates taken in turn (the lines of a bodies file).
    Lines(Vec<String>),
}

impl RequestTemplate {
    pub fn new(
        method: &str,
        target: &Target,
        headers: &[String],
        body: Bodies<'_>,
        first_n: u64,
        clients: Vec<String>,
        pick: Pick,
    ) -> Result<RequestTemplate, String> {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: encours-loadgen\r\n",
            target.path, target.authority
        );
        for h in headers {
            if !h.contains(':') || h.contains('\r') || h.contains('\n') {
                return Err(format!("bad header {h:?}: expected \"Name: value\""));
            }
            head.push_str(h);
            head.push_str("\r\n");
        }
        let bodies: Vec<Vec<Part>> = match body {
            Bodies::None => Vec::new(),
            Bodies::Template(t) => vec![parse_template(t)],
            Bodies::Lines(lines) if lines.is_empty() => return Err("no body in the file".into()),
            Bodies::Lines(lines) => lines.iter().map(|l| parse_template(l)).collect(),
        };
        if !bodies.is_empty() {
            let uses_client = bodies.iter().flatten().any(|p| matches!(p, Part::Client));
            if uses_client && clients.is_empty() {
                return Err("the body uses {client}: give --clients-file".into());
            }
            if !headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
            {
                head.push_str("Content-Type: application/json\r\n");
            }
        }
        Ok(RequestTemplate {
            head: head.into_bytes(),
            bodies,
            first_n,
            clients,
            pick,
        })
    }

    /// Writes request number `n` into `out`; `scratch` holds its body meanwhile.
    pub fn render(&self, n: u64, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        if self.bodies.is_empty() {
            out.extend_from_slice(b"\r\n");
            return;
        }
        let i = n.wrapping_sub(self.first_n);
        let len = self.bodies.len() as u64;
        let parts = &self.bodies[(i % len) as usize];
        scratch.clear();
        for part in parts {
            match part {
                Part::Text(text) => scratch.extend_from_slice(text),
                Part::Counter => write!(scratch, "{n}").expect("writing to a Vec"),
                Part::Client => scratch.extend_from_slice(self.client(n).as_bytes()),
                Part::Round => write!(scratch, "{}", i / len).expect("writing to a Vec"),
            }
        }
        write!(out, "Content-Length: {}\r\n\r\n", scratch.len()).expect("writing to a Vec");
        out.extend_from_slice(scratch);
    }

    fn client(&self, n: u64) -> &str {
        let k = self.clients.len() as u64;
        let i = match self.pick {
            Pick::RoundRobin => n % k,
            Pick::Random => splitmix64(n) % k,
        };
        &self.clients[i as usize]
    }
}

/// Splits a template at its placeholders, in one pass (a bodies file line holds a thousand).
fn parse_template(template: &str) -> Vec<Part> {
    type Token = (&'static str, fn() -> Part);
    let tokens: [Token; 3] = [
        ("{n}", || Part::Counter),
        ("{client}", || Part::Client),
        ("{round}", || Part::Round),
    ];
    let bytes = template.as_bytes();
    let mut parts = Vec::new();
    let (mut text_from, mut at) = (0, 0);
    while at < bytes.len() {
        let found = (bytes[at] == b'{')
            .then(|| {
                tokens
                    .iter()
                    .find(|(t, _)| bytes[at..].starts_with(t.as_bytes()))
            })
            .flatten();
        match found {
            Some((token, part)) => {
                if at > text_from {
                    parts.push(Part::Text(bytes[text_from..at].to_vec()));
                }
                parts.push(part());
                at += token.len();
                text_from = at;
            }
            None => at += 1,
        }
    }
    if text_from < bytes.len() {
        parts.push(Part::Text(bytes[text_from..].to_vec()));
    }
    parts
}

fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(template: &RequestTemplate, n: u64) -> String {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        template.render(n, &mut out, &mut scratch);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_counter_and_client_in_a_json_body() {
        let target = Target::parse("http://127.0.0.1:9/v1/x").unwrap();
        let t = RequestTemplate::new(
            "POST",
            &target,
            &["Authorization: Bearer T".into()],
            Bodies::Template(r#"{"request_id":"r-{n}","client_id":"{client}","n":{n}}"#),
            1,
            vec!["A".into(), "B".into()],
            Pick::RoundRobin,
        )
        .unwrap();
        let body = r#"{"request_id":"r-7","client_id":"B","n":7}"#;
        assert_eq!(
            text(&t, 7),
            format!(
                "POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUser-Agent: encours-loadgen\r\n\
                 Authorization: Bearer T\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn get_without_body_has_no_length() {
        let target = Target::parse("http://localhost:8080").unwrap();
        let t = RequestTemplate::new("GET", &target, &[], Bodies::None, 1, vec![], Pick::Random)
            .unwrap();
        assert_eq!(
            text(&t, 1),
            "GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: encours-loadgen\r\n\r\n"
        );
    }

    #[test]
    fn client_placeholder_needs_clients() {
        let target = Target::parse("http://h:1/").unwrap();
        let t = RequestTemplate::new(
            "POST",
            &target,
            &[],
            Bodies::Template("{client}"),
            1,
            vec![],
            Pick::Random,
        );
        assert!(t.is_err());
    }

    #[test]
    fn bodies_are_taken_in_turn_with_their_round() {
        let target = Target::parse("http://h:1/").unwrap();
        let lines = vec![r#"{"a":"{round}-{n}"}"#.into(), r#"{"b":"{round}"}"#.into()];
        let t = RequestTemplate::new(
            "POST",
            &target,
            &[],
            Bodies::Lines(lines),
            10,
            vec![],
            Pick::Random,
        )
        .unwrap();
        let body = |n| text(&t, n).split("\r\n\r\n").nth(1).unwrap().to_owned();
        assert_eq!(body(10), r#"{"a":"0-10"}"#);
        assert_eq!(body(11), r#"{"b":"0"}"#);
        assert_eq!(body(12), r#"{"a":"1-12"}"#);
        assert_eq!(body(15), r#"{"b":"2"}"#);
    }
}
