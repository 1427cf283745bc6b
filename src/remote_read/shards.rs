//! Series shards: one window's read split into several remote read queries by metric name, so
//! that what the source holds for one query is bounded by the metrics in it, not by the whole
//! cluster's cardinality.
//!
//! The split is exact by construction. The metric names the source knows for the window (its
//! label values API) are cut into groups; each group is one query with `__name__=~"a|b|c"` (the
//! names as escaped literals: Prometheus anchors the regular expression, so each matches only
//! itself). One last query takes `__name__!~"<every listed name>"`: whatever has a name that
//! was not listed (a metric that first appeared after the names were asked for) or no name at
//! all. A series has one `__name__` (or none), so it matches exactly one query.

use crate::proto::{LabelMatcher, label_matcher::Type};

/// The extra matcher of each query of a window's read, in order. No names (the label values
/// API found none) give one query with no extra matcher, which reads everything.
pub fn name_shards(names: &[String], names_per_read: usize) -> Vec<Option<LabelMatcher>> {
    let mut names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return vec![None];
    }
    let mut shards: Vec<Option<LabelMatcher>> = names
        .chunks(names_per_read.max(1))
        .map(|group| Some(name_matcher(Type::Re, group)))
        .collect();
    shards.push(Some(name_matcher(Type::Nre, &names)));
    shards
}

fn name_matcher(kind: Type, names: &[&str]) -> LabelMatcher {
    let alternatives: Vec<String> = names.iter().map(|n| escape_literal(n)).collect();
    LabelMatcher {
        r#type: kind as i32,
        name: "__name__".into(),
        value: alternatives.join("|"),
    }
}

/// A literal as RE2 (Prometheus' regular expressions) reads it: every metacharacter escaped,
/// the same set as Go's `regexp.QuoteMeta`.
fn escape_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A shard's matcher as Prometheus applies it: the expression anchored at both ends, a
    /// missing label read as "". The argument is the series' name (None: it has none).
    fn matcher_fn(shard: &Option<LabelMatcher>) -> impl Fn(Option<&str>) -> bool + use<> {
        let compiled = shard.as_ref().map(|m| {
            let anchored = regex::Regex::new(&format!("^(?:{})$", m.value)).unwrap();
            (anchored, m.r#type == Type::Re as i32)
        });
        move |name| match &compiled {
            None => true,
            Some((anchored, positive)) => anchored.is_match(name.unwrap_or("")) == *positive,
        }
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        // Ordinary metric names, and names made of every metacharacter (UTF-8 names are legal
        // in newer Prometheus), so that a wrong escape shows.
        prop_oneof!["[a-z_:][a-z0-9_:]{0,12}", r"[a-z\\.+*?()|\[\]{}^$ é]{1,6}",]
    }

    proptest! {
        #[test]
        fn every_series_is_read_by_exactly_one_shard(
            listed in proptest::collection::vec(name_strategy(), 0..40),
            unlisted in proptest::collection::vec(name_strategy(), 0..10),
            per_read in 1usize..8,
        ) {
            let shards: Vec<_> = name_shards(&listed, per_read).iter().map(matcher_fn).collect();
            let names = listed.iter().chain(&unlisted).map(|n| Some(n.as_str()));
            for name in names.chain([None]) {
                let hits = shards.iter().filter(|matches| matches(name)).count();
                prop_assert_eq!(hits, 1, "{:?} is read by {} shards", name, hits);
            }
        }
    }

    #[test]
    fn names_are_grouped_sorted_and_the_last_shard_takes_the_rest() {
        let names: Vec<String> = ["up", "b_total", "a", "up", ""]
            .iter()
            .map(ToString::to_string)
            .collect();
        let shards = name_shards(&names, 2);
        let shards: Vec<LabelMatcher> = shards.into_iter().flatten().collect();
        let shown: Vec<(i32, &str)> = shards
            .iter()
            .map(|s| (s.r#type, s.value.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (Type::Re as i32, "a|b_total"),
                (Type::Re as i32, "up"),
                (Type::Nre as i32, "a|b_total|up"),
            ]
        );
        assert!(shards.iter().all(|s| s.name == "__name__"));
        assert_eq!(
            name_shards(&[], 10),
            [None],
            "no names: one query that reads everything"
        );
    }
}
