//! Reads the `redis` service's `command:` out of the crate's `compose.yaml`, so the tests run a
//! local `redis-server` with exactly the production settings (no Docker needed).
//!
//! There is no YAML crate available, so this is a small purpose-built parser for the layout used
//! there: a top-level `services:` mapping, a service key such as `redis:`, and under it a
//! `command:` block sequence of `- item` lines whose items are plain scalars, `"double quoted"`
//! (with backslash escapes) or `'single quoted'`. Anything else (flow sequences `[...]`,
//! multi-line items, tabs) fails loudly instead of being guessed at.

use std::path::PathBuf;

/// Path of the crate's `compose.yaml`.
pub fn compose_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compose.yaml")
}

/// The `redis-server` arguments of `services.redis.command` in `compose.yaml`, with
/// `${REDIS_PASSWORD...}` replaced by `password`, the value after `--port` replaced by `port`, and
/// the leading `redis-server` dropped. Panics with a descriptive message on anything unexpected.
pub fn compose_redis_args(password: &str, port: u16) -> Vec<String> {
    let path = compose_file();
    let yaml = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let command =
        parse_service_command(&yaml, "redis").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    redis_args_from_command(&command, password, port)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Turns a compose `command` list into `redis-server` args (see [`compose_redis_args`]).
pub fn redis_args_from_command(
    command: &[String],
    password: &str,
    port: u16,
) -> Result<Vec<String>, String> {
    let (program, rest) = command
        .split_first()
        .ok_or("the redis `command` list is empty")?;
    if program != "redis-server" {
        return Err(format!(
            "the redis `command` must start with `redis-server`, found {program:?}"
        ));
    }
    let mut args = rest
        .iter()
        .map(|item| substitute_vars(item, password))
        .collect::<Result<Vec<_>, _>>()?;
    let port_at = args
        .iter()
        .position(|a| a == "--port")
        .ok_or("the redis `command` has no `--port`")?;
    let value = args
        .get_mut(port_at + 1)
        .ok_or("the redis `command` ends with `--port` and no value")?;
    *value = port.to_string();
    Ok(args)
}

/// Replaces compose interpolations: `${REDIS_PASSWORD}`, `${REDIS_PASSWORD:?msg}`,
/// `${REDIS_PASSWORD?msg}`, `${REDIS_PASSWORD:-default}`, `${REDIS_PASSWORD-default}` become
/// `password`; `$$` becomes `$`. Any other variable is an error.
fn substitute_vars(item: &str, password: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = item;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {item:?}"))?;
            let expr = &body[..end];
            let name_len = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, modifier) = expr.split_at(name_len);
            let modifier_ok = modifier.is_empty()
                || [":?", "?", ":-", "-"]
                    .iter()
                    .any(|m| modifier.starts_with(m));
            if name != "REDIS_PASSWORD" || !modifier_ok {
                return Err(format!(
                    "unsupported interpolation `${{{expr}}}` in {item:?}"
                ));
            }
            out.push_str(password);
            rest = &body[end + 1..];
        } else {
            return Err(format!(
                "unsupported `$` (only `${{REDIS_PASSWORD...}}` and `$$`) in {item:?}"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One significant (non-blank, non-comment) line: its number, indentation and content.
struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// Extracts `services.<service>.command` (a block sequence) from compose YAML.
pub fn parse_service_command(yaml: &str, service: &str) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for (i, raw) in yaml.lines().enumerate() {
        let content = raw.trim_start_matches(' ');
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        if content.starts_with('\t') {
            return Err(format!("line {}: tab indentation is not supported", i + 1));
        }
        lines.push(Line {
            number: i + 1,
            indent: raw.len() - content.len(),
            text: content.trim_end(),
        });
    }

    // `services:` at the top level, then its children.
    let services_at = lines
        .iter()
        .position(|l| l.indent == 0 && mapping_key(l.text).is_some_and(|(k, _)| k == "services"))
        .ok_or("no top-level `services:` section")?;
    let services = block_after(&lines, services_at);
    let service_indent = services.first().ok_or("`services:` is empty")?.indent;

    // `<service>:` directly under `services:`.
    let service_at = services
        .iter()
        .position(|l| {
            l.indent == service_indent && mapping_key(l.text).is_some_and(|(k, _)| k == service)
        })
        .ok_or_else(|| format!("no `services: {service}:` section"))?;
    let body = block_after(services, service_at);
    let prop_indent = body
        .first()
        .ok_or_else(|| format!("service `{service}` is empty"))?
        .indent;

    // `command:` directly under the service.
    let command_at = body
        .iter()
        .position(|l| {
            l.indent == prop_indent && mapping_key(l.text).is_some_and(|(k, _)| k == "command")
        })
        .ok_or_else(|| format!("service `{service}` has no `command:`"))?;
    let (_, inline) = mapping_key(body[command_at].text).expect("matched above");
    if !inline.is_empty() {
        return Err(format!(
            "line {}: `services.{service}.command` must be a block sequence of `- item` lines, found `{inline}`",
            body[command_at].number
        ));
    }

    // The `- item` lines: a block sequence may sit deeper than, or at the same indent as, its key.
    let items = body[command_at + 1..]
        .iter()
        .take_while(|l| l.indent > prop_indent || (l.indent == prop_indent && is_seq_item(l.text)));
    let mut out = Vec::new();
    let mut seq_indent = None;
    for line in items {
        let indent = *seq_indent.get_or_insert(line.indent);
        if line.indent != indent || !is_seq_item(line.text) {
            return Err(format!(
                "line {}: expected a `- item` of `services.{service}.command` (nested or multi-line items are not supported)",
                line.number
            ));
        }
        let value = line.text[1..].trim_start();
        out.push(parse_scalar(value).map_err(|e| format!("line {}: {e}", line.number))?);
    }
    if out.is_empty() {
        return Err(format!(
            "`services.{service}.command` has no `- item` lines"
        ));
    }
    Ok(out)
}

/// The lines indented deeper than `lines[at]` that directly follow it.
fn block_after<'l, 'a>(lines: &'l [Line<'a>], at: usize) -> &'l [Line<'a>] {
    let indent = lines[at].indent;
    let len = lines[at + 1..]
        .iter()
        .take_while(|l| l.indent > indent)
        .count();
    &lines[at + 1..at + 1 + len]
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` → `(key, rest)` for a plain (unquoted) mapping key; `rest` has any trailing
/// comment removed. `None` if the line is not a mapping entry.
fn mapping_key(text: &str) -> Option<(&str, &str)> {
    if is_seq_item(text) {
        return None;
    }
    let (key, rest) = match text.find(": ") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text.strip_suffix(':')?, ""),
    };
    let rest = rest.trim();
    let rest = if rest.starts_with('#') { "" } else { rest };
    Some((key.trim(), rest))
}

/// Parses a flow scalar: `"double"` (with `\` escapes), `'single'` (`''` escapes a quote), or
/// plain (up to a ` #` comment).
fn parse_scalar(value: &str) -> Result<String, String> {
    let (parsed, rest) = if let Some(body) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated double-quoted string {value}")),
                Some((i, '"')) => break i + 1,
                Some((_, '\\')) => match chars.next().map(|(_, c)| c) {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('/') => out.push('/'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    other => {
                        return Err(format!(
                            "unsupported escape `\\{}` in {value}",
                            other.unwrap_or(' ')
                        ))
                    }
                },
                Some((_, c)) => out.push(c),
            }
        };
        (out, &body[end..])
    } else if let Some(body) = value.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = body.char_indices().peekable();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated single-quoted string {value}")),
                Some((_, '\'')) if chars.peek().map(|&(_, c)| c) == Some('\'') => {
                    chars.next();
                    out.push('\'');
                }
                Some((i, '\'')) => break i + 1,
                Some((_, c)) => out.push(c),
            }
        };
        (out, &body[end..])
    } else {
        let plain = value.find(" #").map_or(value, |i| &value[..i]).trim_end();
        if plain.is_empty() {
            return Err("empty (null) sequence item".to_owned());
        }
        if plain.starts_with(['[', '{', '&', '*', '!', '|', '>']) {
            return Err(format!("unsupported YAML construct in item `{plain}`"));
        }
        return Ok(plain.to_owned());
    };
    let rest = rest.trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err(format!("unexpected text after quoted string: {value}"));
    }
    Ok(parsed)
}
