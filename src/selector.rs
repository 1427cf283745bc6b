//! Series selectors (`up`, `{job="node"}`, `node_cpu_seconds_total{mode!="idle"}`) parsed into the
//! label matchers that a remote read query carries. Names outside the legacy character set are
//! written quoted inside the braces, as Prometheus 3 reads and prints them:
//! `{"http.server.duration", "service.name"="a.b"}` (a quoted name alone is the metric name).

use crate::error::{Error, Result};
use crate::proto::{LabelMatcher, label_matcher::Type};

/// What is read when the user names no `--match`: every series.
pub const ALL_SERIES: &str = r#"{__name__=~".+"}"#;

/// One `--match` argument, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub text: String,
    pub matchers: Vec<LabelMatcher>,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A `--match` flag and a line of `PROMIMPORT_MATCH` are parsed here, once; `Display` gives the
/// text back.
impl std::str::FromStr for Selector {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        parse_selector(text)
    }
}

pub fn parse_selector(input: &str) -> Result<Selector> {
    let bad = |reason: &str| Error::invalid("--match selector", input, reason.to_string());
    let mut parser = Parser {
        text: input,
        pos: 0,
    };
    let mut matchers = Vec::new();
    parser.skip_space();
    let name = parser.identifier(true);
    if !name.is_empty() {
        matchers.push(matcher(Type::Eq, "__name__", name));
    }
    parser.skip_space();
    if parser.eat("{") {
        parser
            .braces(&mut matchers)
            .map_err(|reason| bad(&reason))?;
    }
    parser.skip_space();
    if parser.pos != input.len() {
        return Err(bad(&format!(
            "unexpected {:?} at offset {}; write selectors like up{{job=\"node\"}}",
            &input[parser.pos..],
            parser.pos
        )));
    }
    if matchers.is_empty() {
        return Err(bad(&format!(
            "selects nothing; name a metric or a label, or use {ALL_SERIES} for every series"
        )));
    }
    if matchers.iter().all(matches_empty) {
        return Err(bad(&format!(
            "every matcher also matches series without the label, which Prometheus refuses; \
             add one that needs a value, such as {ALL_SERIES}"
        )));
    }
    Ok(Selector {
        text: input.trim().to_string(),
        matchers,
    })
}

/// A label name as a selector writes it: as it is where the legacy character set allows
/// (`[a-zA-Z_][a-zA-Z0-9_]*`), quoted otherwise (`"service.name"`), which `parse_selector` reads
/// back.
pub fn label_name(name: &str) -> std::borrow::Cow<'_, str> {
    let legacy = name
        .char_indices()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if legacy && !name.is_empty() {
        name.into()
    } else {
        format!("{name:?}").into()
    }
}

fn matcher(kind: Type, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind as i32,
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// Whether a matcher is satisfied by a missing label. Regular expressions other than the
/// obvious ones are assumed not to: the source has the final word and its error is passed on.
fn matches_empty(m: &LabelMatcher) -> bool {
    match Type::try_from(m.r#type) {
        Ok(Type::Eq) => m.value.is_empty(),
        Ok(Type::Neq) => !m.value.is_empty(),
        Ok(Type::Re) => matches!(m.value.as_str(), "" | ".*" | "^.*$"),
        Ok(Type::Nre) => !matches!(m.value.as_str(), "" | "^$"),
        Err(_) => true,
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// The matchers between `{` (just eaten) and `}`; the reason when they cannot be read.
    fn braces(&mut self, matchers: &mut Vec<LabelMatcher>) -> std::result::Result<(), String> {
        loop {
            self.skip_space();
            if self.eat("}") {
                return Ok(());
            }
            let quoted = self.rest().starts_with(['"', '\'', '`']);
            let label = if quoted {
                self.string()?
            } else {
                self.identifier(false).to_string()
            };
            if label.is_empty() {
                return Err(format!("expected a label name at offset {}", self.pos));
            }
            self.skip_space();
            if quoted && (self.rest().starts_with(',') || self.rest().starts_with('}')) {
                // `{"a.b"}`: the metric name, as Prometheus 3 writes a UTF-8 one.
                if matchers.iter().any(|m| m.name == "__name__") {
                    return Err(format!("a second metric name, {label:?}"));
                }
                matchers.push(matcher(Type::Eq, "__name__", &label));
                self.eat(",");
                continue;
            }
            let kind = if self.eat("=~") {
                Type::Re
            } else if self.eat("!~") {
                Type::Nre
            } else if self.eat("!=") {
                Type::Neq
            } else if self.eat("=") {
                Type::Eq
            } else {
                return Err(format!(
                    "expected one of = != =~ !~ after {label:?} at offset {}",
                    self.pos
                ));
            };
            self.skip_space();
            let value = self.string()?;
            matchers.push(matcher(kind, &label, &value));
            self.skip_space();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(());
            }
            return Err(format!("expected , or }} at offset {}", self.pos));
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    /// A metric name (which may hold colons) or a label name.
    fn identifier(&mut self, metric: bool) -> &'a str {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| {
                let ok = c == '_'
                    || c.is_ascii_alphabetic()
                    || (i > 0 && c.is_ascii_digit())
                    || (metric && c == ':');
                !ok
            })
            .map_or(rest.len(), |(i, _)| i);
        self.pos += len;
        &rest[..len]
    }

    /// A PromQL string: double or single quotes with Go escapes, or backquotes taken raw.
    fn string(&mut self) -> std::result::Result<String, String> {
        let start = self.pos;
        let mut chars = self.rest().char_indices();
        let quote = match chars.next() {
            Some((_, q @ ('"' | '\'' | '`'))) => q,
            _ => return Err(format!("expected a quoted value at offset {start}")),
        };
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + c.len_utf8();
                return Ok(value);
            }
            if c == '\\' && quote != '`' {
                let escaped = match chars.next() {
                    Some((_, 'n')) => '\n',
                    Some((_, 't')) => '\t',
                    Some((_, 'r')) => '\r',
                    Some((_, e @ ('\\' | '"' | '\''))) => e,
                    Some((_, e)) => return Err(format!("unknown escape \\{e} in a value")),
                    None => break,
                };
                value.push(escaped);
            } else {
                value.push(c);
            }
        }
        Err(format!(
            "value starting at offset {start} has no closing {quote}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Vec<(Type, String, String)> {
        parse_selector(s)
            .unwrap()
            .matchers
            .into_iter()
            .map(|m| (Type::try_from(m.r#type).unwrap(), m.name, m.value))
            .collect()
    }

    fn m(t: Type, n: &str, v: &str) -> (Type, String, String) {
        (t, n.into(), v.into())
    }

    #[test]
    fn parses_names_braces_and_every_operator() {
        assert_eq!(parsed("up"), vec![m(Type::Eq, "__name__", "up")]);
        assert_eq!(
            parsed(
                r#" node:cpu:rate5m { job = "node", mode!='idle', cpu=~`1|2`, dev!~"sd\"a", } "#
            ),
            vec![
                m(Type::Eq, "__name__", "node:cpu:rate5m"),
                m(Type::Eq, "job", "node"),
                m(Type::Neq, "mode", "idle"),
                m(Type::Re, "cpu", "1|2"),
                m(Type::Nre, "dev", "sd\"a"),
            ]
        );
        assert_eq!(parsed(ALL_SERIES), vec![m(Type::Re, "__name__", ".+")]);
    }

    #[test]
    fn utf8_names_are_written_quoted_as_prometheus_3_writes_them() {
        assert_eq!(
            parsed(r#"{"http.server.duration", "service.name"="a.b", 'ünits/s'!~"x"}"#),
            vec![
                m(Type::Eq, "__name__", "http.server.duration"),
                m(Type::Eq, "service.name", "a.b"),
                m(Type::Nre, "ünits/s", "x"),
            ]
        );
        assert_eq!(parsed(r#"{"a.b"}"#), vec![m(Type::Eq, "__name__", "a.b")]);
        let err = parse_selector(r#"up{"a.b"}"#).unwrap_err().to_string();
        assert!(err.contains("a second metric name"), "{err}");
        // What label_name writes, parse_selector reads back.
        for name in [
            "job",
            "_x9",
            "service.name",
            "9lives",
            "ünits/s",
            "a\"b",
            "",
        ] {
            let text = format!("{{{}=\"v\"}}", label_name(name));
            let back = parse_selector(&text).map(|s| s.matchers[0].name.clone());
            if name.is_empty() {
                assert!(back.is_err(), "{text}");
            } else {
                assert_eq!(back.unwrap(), name, "{text}");
            }
        }
    }

    #[test]
    fn bad_selectors_say_where_and_why() {
        for (input, needle) in [
            ("", "selects nothing"),
            ("{}", "selects nothing"),
            ("{job=\"a\"", "expected , or }"),
            ("{job=node}", "quoted value"),
            ("{job==\"a\"}", "quoted value"),
            ("{job:\"a\"}", "expected one of"),
            ("up{job=\"a}", "no closing"),
            ("up job", "unexpected"),
            ("{9a=\"x\"}", "label name"),
            (r#"{job=~".*"}"#, "matches series without the label"),
            (r#"{job=""}"#, "matches series without the label"),
        ] {
            let err = parse_selector(input).unwrap_err().to_string();
            assert!(err.contains("--match selector"), "{input}: {err}");
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
