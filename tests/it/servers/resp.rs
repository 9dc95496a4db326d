//! A minimal, blocking RESP2 client used by the test harness to talk to `redis-server` without
//! `redis-cli` and without going through the crate under test.
//!
//! Commands are encoded as RESP arrays of bulk strings; replies are parsed into [`Reply`].
//! Every connection has read/write timeouts so a hung (e.g. `SIGSTOP`ped) server turns into an
//! `io::Error` instead of a hung test.
//!
//! The client is plain `std` blocking I/O. That is fine inside
//! `#[tokio::test(flavor = "multi_thread")]` bodies (they run on the test thread, not on a
//! runtime worker), but don't call it from inside a `current_thread` runtime while the same
//! runtime has to drive something the call depends on (such as a [`super::TcpProxy`]).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Default timeout for connecting, reading and writing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR something` (the text after `-`).
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Nil,
    /// `*2\r\n...`
    Array(Vec<Reply>),
}

impl Reply {
    /// `true` for [`Reply::Error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The error text, if this is an error reply.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The payload of a simple string or bulk reply as bytes; `None` for anything else.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Simple(s) => Some(s.as_bytes()),
            Reply::Bulk(b) => Some(b),
            _ => None,
        }
    }

    /// The integer of an integer reply (or a bulk/simple string holding a decimal integer).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Integer(i) => Some(*i),
            Reply::Simple(_) | Reply::Bulk(_) => {
                std::str::from_utf8(self.as_bytes()?).ok()?.parse().ok()
            }
            _ => None,
        }
    }

    /// The elements of an array reply; `None` for anything else.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The reply rendered as text (see the [`fmt::Display`] impl).
    pub fn text(&self) -> String {
        self.to_string()
    }
}

/// Renders a reply as plain text: simple strings, errors and bulk strings as their (lossy UTF-8)
/// content, integers in decimal, nil as `(nil)`, arrays as their elements joined with `\n`.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(s) | Reply::Error(s) => f.write_str(s),
            Reply::Integer(i) => write!(f, "{i}"),
            Reply::Bulk(b) => f.write_str(&String::from_utf8_lossy(b)),
            Reply::Nil => f.write_str("(nil)"),
            Reply::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one complete RESP2 reply from `reader`.
///
/// A connection closed in the middle of a reply yields `ErrorKind::UnexpectedEof`; malformed
/// input yields `ErrorKind::InvalidData`.
pub fn read_reply<R: BufRead>(reader: &mut R) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line
        .split_first()
        .ok_or_else(|| invalid("empty reply line"))?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Reply::Simple(text())),
        b'-' => Ok(Reply::Error(text())),
        b':' => Ok(Reply::Integer(parse_int(rest)?)),
        b'$' => {
            let len = parse_int(rest)?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            let mut data = vec![0; len as usize + 2];
            reader.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(invalid("bulk string not terminated by CRLF"));
            }
            data.truncate(len as usize);
            Ok(Reply::Bulk(data))
        }
        b'*' => {
            let len = parse_int(rest)?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            (0..len)
                .map(|_| read_reply(reader))
                .collect::<io::Result<_>>()
                .map(Reply::Array)
        }
        other => Err(invalid(&format!(
            "unknown RESP type byte {:?}",
            *other as char
        ))),
    }
}

fn read_line<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = reader.read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "connection closed mid-reply after {:?}",
                String::from_utf8_lossy(&line)
            ),
        ));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn parse_int(bytes: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            invalid(&format!(
                "bad RESP integer {:?}",
                String::from_utf8_lossy(bytes)
            ))
        })
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// One blocking RESP connection.
pub struct RespConnection {
    reader: BufReader<TcpStream>,
}

impl RespConnection {
    /// Connects to `addr`; `timeout` bounds the connect and every later read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let conn = RespConnection {
            reader: BufReader::new(stream),
        };
        conn.set_timeout(timeout)?;
        Ok(conn)
    }

    /// Connects and, if `password` is set, authenticates with `AUTH`.
    pub fn connect_auth(
        addr: SocketAddr,
        password: Option<&str>,
        timeout: Duration,
    ) -> io::Result<Self> {
        let mut conn = Self::connect(addr, timeout)?;
        if let Some(password) = password {
            match conn.call(&["AUTH", password])? {
                Reply::Simple(ok) if ok == "OK" => {}
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("AUTH failed: {other}"),
                    ))
                }
            }
        }
        Ok(conn)
    }

    /// Changes the read and write timeout.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))
    }

    /// Sends one command without reading the reply (for pipelining or raw tests).
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        self.send_raw(&encode_command(args))
    }

    /// Writes raw bytes to the socket.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Reads the next reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    /// Sends a command and reads its reply. Error replies are `Ok(Reply::Error(..))`.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Reads everything the peer sends until it closes the connection. Returns the bytes read
    /// and the error that ended the read, if any (a reset or the read timeout); a clean close
    /// gives `None`.
    pub fn read_to_close(&mut self) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let err = self.reader.read_to_end(&mut out).err();
        (out, err)
    }
}
