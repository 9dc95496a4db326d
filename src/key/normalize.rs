//! A request header's value as a varying response's key holds it: normalised only in ways
//! RFC 9110 and RFC 9111 section 4.1 allow (whitespace, the case of case-insensitive tokens, the
//! order of equally weighted list members), so that requests a handler cannot tell apart share
//! one entry.

use http::{header, HeaderMap, HeaderName};

/// The content codings a server picks among, from least to most preferred at equal weight (the
/// order tower-http's `CompressionLayer` breaks ties in).
const CODINGS: [&str; 5] = ["identity", "deflate", "gzip", "br", "zstd"];

/// The key's value of header `name` of a request: `None` when the request has none, else its
/// normalised value.
///
/// - `Accept-Encoding`: the coding a server that knows identity, deflate, gzip, br and zstd
///   would pick by the request's q-values (`none` when the request accepts none of them), so
///   that thousands of distinct strings make a handful of variants; never `None`, since no
///   header means identity.
/// - `Accept`, `Accept-Charset`, `Accept-Language`: members with their tokens and parameter
///   names lowercased, whitespace dropped, `q` written canonically, sorted by weight (members of
///   equal weight keep their order, which may be significant).
/// - Any other header: each line trimmed, lines kept apart and in order.
pub(crate) fn normalized(name: &HeaderName, headers: &HeaderMap) -> Option<Vec<u8>> {
    if name == header::ACCEPT_ENCODING {
        return Some(preferred_coding(headers).as_bytes().to_vec());
    }
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let weighted =
        name == header::ACCEPT || name == header::ACCEPT_LANGUAGE || name == header::ACCEPT_CHARSET;
    if weighted {
        return Some(weighted_list(headers, name));
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            // No header value holds a NUL: lines stay apart.
            out.push(0);
        }
        out.extend_from_slice(line.as_bytes().trim_ascii());
    }
    Some(out)
}

/// The coding tower-http's `CompressionLayer` (with every coding enabled) picks for a request:
/// the highest weight, ties to the more preferred coding; `*` weighs every coding not listed.
fn preferred_coding(headers: &HeaderMap) -> &'static str {
    let mut explicit: [Option<u16>; 5] = [None; 5];
    let mut wildcard = None;
    for (token, q) in members(headers, &header::ACCEPT_ENCODING) {
        if token == "*" {
            wildcard.get_or_insert(q);
        } else if let Some(i) = CODINGS.iter().position(|c| same_coding(token, c)) {
            // A coding listed twice weighs its highest (tower-http takes the maximum).
            explicit[i] = Some(explicit[i].map_or(q, |seen| seen.max(q)));
        }
    }
    let weights: [u16; 5] = match wildcard {
        Some(w) => explicit.map(|q| q.unwrap_or(w)),
        None => {
            let weights = explicit.map(|q| q.unwrap_or(0));
            // Without `*`, identity is acceptable unless refused, as a last resort.
            if weights.iter().all(|&q| q == 0) {
                return match explicit[0] {
                    Some(0) => "none",
                    _ => "identity",
                };
            }
            weights
        }
    };
    let best = (0..CODINGS.len())
        .filter(|&i| weights[i] > 0)
        .max_by_key(|&i| (weights[i], i));
    best.map_or("none", |i| CODINGS[i])
}

pub(crate) fn same_coding(token: &str, coding: &str) -> bool {
    token.eq_ignore_ascii_case(coding) || (coding == "gzip" && token.eq_ignore_ascii_case("x-gzip"))
}

/// The members of every line of `name` as (token, weight in thousandths); members whose weight
/// does not parse are left out (as tower-http does).
pub(crate) fn members<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = (&'a str, u16)> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(','))
        .filter_map(|member| {
            let mut params = member.split(';');
            let token = params.next().unwrap_or("").trim();
            if token.is_empty() {
                return None;
            }
            let mut q = 1000;
            for param in params {
                if let Some((key, value)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        q = weight(value.trim())?;
                    }
                }
            }
            Some((token, q))
        })
}

/// A q-value (RFC 9110 section 12.4.2) in thousandths.
fn weight(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// An `Accept`-like list, normalised: see [`normalized`].
fn weighted_list(headers: &HeaderMap, name: &HeaderName) -> Vec<u8> {
    let mut members: Vec<(u16, String)> = Vec::new();
    let lines = headers.get_all(name).iter();
    for line in lines {
        let Ok(line) = line.to_str() else {
            // Not visible ASCII: kept as it is, in its own member.
            members.push((1000, String::from_utf8_lossy(line.as_bytes()).into_owned()));
            continue;
        };
        for member in line.split(',') {
            let mut parts = member.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            let mut normal = token.to_ascii_lowercase();
            for param in parts {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
                if key == "q" {
                    q = weight(value);
                    continue;
                }
                normal.push(';');
                normal.push_str(&key);
                normal.push('=');
                normal.push_str(value);
            }
            match q {
                Some(q) => members.push((q, normal)),
                // An invalid weight: kept verbatim, so no two such requests are merged.
                None => members.push((1000, member.trim().to_owned())),
            }
        }
    }
    // Stable: members of equal weight keep the order the client gave them.
    members.sort_by_key(|member| std::cmp::Reverse(member.0));
    let mut out = Vec::new();
    for (i, (q, member)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(member.as_bytes());
        if *q != 1000 {
            out.extend_from_slice(format!(";q=0.{q:03}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: HeaderName, lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(name.clone(), HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn coding(lines: &[&str]) -> String {
        let h = headers(header::ACCEPT_ENCODING, lines);
        String::from_utf8(normalized(&header::ACCEPT_ENCODING, &h).unwrap()).unwrap()
    }

    #[test]
    fn accept_encoding_is_the_coding_a_server_would_pick() {
        assert_eq!(coding(&[]), "identity");
        assert_eq!(coding(&["gzip, deflate, br, zstd"]), "zstd");
        assert_eq!(coding(&["gzip, deflate, br"]), "br");
        assert_eq!(coding(&["GZIP"]), "gzip");
        assert_eq!(coding(&["x-gzip"]), "gzip");
        assert_eq!(coding(&["br;q=0.5, gzip;q=0.8"]), "gzip");
        assert_eq!(coding(&["br;q=0.5", "gzip;q=0.8"]), "gzip");
        assert_eq!(coding(&["br;q=0, gzip;q=0"]), "identity");
        assert_eq!(coding(&["identity;q=0"]), "none");
        assert_eq!(coding(&["*"]), "zstd");
        assert_eq!(coding(&["*;q=0.5, gzip"]), "gzip");
        assert_eq!(coding(&["*;q=0"]), "none");
        assert_eq!(coding(&["compress, sdch"]), "identity");
        assert_eq!(
            coding(&["gzip;q=2, deflate"]),
            "deflate",
            "an invalid weight is skipped"
        );
    }

    #[test]
    fn weighted_lists_ignore_whitespace_case_and_the_order_of_weights() {
        let n = |lines: &[&str]| {
            let h = headers(header::ACCEPT_LANGUAGE, lines);
            normalized(&header::ACCEPT_LANGUAGE, &h).unwrap()
        };
        assert_eq!(n(&["en-US, fr;q=0.5"]), n(&["fr;Q=0.50 ,EN-us"]));
        assert_eq!(n(&["en-US", "fr;q=0.5"]), n(&["en-us,fr;q=0.5"]));
        assert_eq!(n(&["en, fr"]), b"en,fr".to_vec());
        assert_ne!(
            n(&["en, fr"]),
            n(&["fr, en"]),
            "equal weights keep their order"
        );
        assert_ne!(n(&["en;q=0.5"]), n(&["en"]));
        assert_ne!(
            n(&["en;q=5"]),
            n(&["en"]),
            "an invalid weight is kept verbatim"
        );
    }

    #[test]
    fn other_headers_are_trimmed_lines_and_absence_is_not_emptiness() {
        let origin = HeaderName::from_static("origin");
        let n = |lines: &[&str]| normalized(&origin, &headers(origin.clone(), lines));
        assert_eq!(n(&[]), None);
        assert_eq!(n(&[""]), Some(Vec::new()));
        assert_eq!(n(&[" https://a.example "]), n(&["https://a.example"]));
        assert_ne!(n(&["https://A.example"]), n(&["https://a.example"]));
        assert_ne!(n(&["a", "b"]), n(&["a, b"]));
    }
}
