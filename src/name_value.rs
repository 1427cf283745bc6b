//! A `NAME=VALUE` argument (`--dest-header X-Scope-OrgID=tenant`, `--set-label cluster=old`),
//! parsed once where the user types it (a flag, a line of a Job's environment) and carried as a
//! pair from there on. `Display` writes the text back, so a Job's environment holds exactly
//! what `FromStr` reads.

use std::fmt;
use std::str::FromStr;

/// One `NAME=VALUE` pair: the name trimmed and not empty, the value everything after the first
/// `=` (a header value or label value may itself hold `=`).
/// Stored (a local run's `import.json`) as a `[name, value]` pair, as before it had a type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(from = "(String, String)", into = "(String, String)")]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

impl NameValue {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        NameValue {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Pairs from a map of a spec or target file (`headers:`, `setLabels:`), in the map's order.
    pub fn from_map(map: &std::collections::BTreeMap<String, String>) -> Vec<Self> {
        map.iter().map(|(k, v)| NameValue::new(k, v)).collect()
    }
}

impl From<(String, String)> for NameValue {
    fn from((name, value): (String, String)) -> Self {
        NameValue { name, value }
    }
}

impl From<NameValue> for (String, String) {
    fn from(pair: NameValue) -> Self {
        (pair.name, pair.value)
    }
}

impl FromStr for NameValue {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                Ok(NameValue::new(name.trim(), value))
            }
            _ => Err(format!(
                "expected NAME=VALUE (e.g. X-Scope-OrgID=tenant or cluster=old), got {text:?}"
            )),
        }
    }
}

impl fmt::Display for NameValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_pair_needs_a_name_and_an_equals_sign() {
        for bad in ["", "novalue", "=value", " =value"] {
            assert!(bad.parse::<NameValue>().is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            "X-Other=a=b".parse::<NameValue>().unwrap(),
            NameValue::new("X-Other", "a=b")
        );
        assert_eq!(
            " cluster =".parse::<NameValue>().unwrap(),
            NameValue::new("cluster", "")
        );
    }

    proptest! {
        #[test]
        fn display_is_the_inverse_of_parsing(name in "[A-Za-z_][A-Za-z0-9_-]{0,20}", value in "[^\n]{0,40}") {
            let pair = NameValue::new(name, value);
            prop_assert_eq!(pair.to_string().parse::<NameValue>().unwrap(), pair);
        }
    }
}
