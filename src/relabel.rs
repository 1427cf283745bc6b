//! What happens to a series' labels between source and destination. Prometheus adds its external
//! labels (the operator's `prometheus`, `prometheus_replica`) to remote read answers, so imported
//! series differ from live ones unless the user drops or rewrites them.

use crate::error::{Error, Result};
use crate::name_value::NameValue;
use crate::proto::Label;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelRules {
    /// Label names removed from every series.
    pub drop: Vec<String>,
    /// Labels set on every series, replacing a value the source had.
    pub set: Vec<NameValue>,
}

impl LabelRules {
    /// The labels the destination receives: rules applied, empty values removed (remote write
    /// 1.0 forbids them; they mean "no label" in Prometheus), sorted by name.
    pub fn apply(&self, mut labels: Vec<Label>) -> Result<Vec<Label>> {
        if !self.drop.is_empty() {
            labels.retain(|l| !self.drop.contains(&l.name));
        }
        for NameValue { name, value } in &self.set {
            match labels.iter_mut().find(|l| &l.name == name) {
                Some(label) => label.value.clone_from(value),
                None => labels.push(Label {
                    name: name.clone(),
                    value: value.clone(),
                }),
            }
        }
        labels.retain(|l| !l.value.is_empty());
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::BadLabels(format!(
                "label {:?} appears twice",
                pair[0].name
            )));
        }
        if labels.iter().any(|l| l.name.is_empty()) {
            return Err(Error::BadLabels(format!(
                "a label has an empty name in {}",
                render(&labels)
            )));
        }
        Ok(labels)
    }

    /// Whether `apply` would give `labels` back as they are: no rules, and labels sorted by
    /// name, each name once, none empty (as every Prometheus sends them). A series is then
    /// passed on without a copy of its labels.
    pub fn keeps(&self, labels: &[Label]) -> bool {
        self.drop.is_empty()
            && self.set.is_empty()
            && labels
                .iter()
                .all(|l| !l.name.is_empty() && !l.value.is_empty())
            && labels.windows(2).all(|w| w[0].name < w[1].name)
    }
}

/// `{a="1", b="2"}` for messages (`{"service.name"="a.b"}` for a UTF-8 label name).
pub fn render(labels: &[Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", crate::selector::label_name(&l.name), l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    #[test]
    fn labels_kept_as_they_are_are_exactly_what_apply_gives() {
        let none = LabelRules::default();
        for (pairs, kept) in [
            (&[("__name__", "up"), ("job", "a")][..], true),
            (&[][..], true),
            (&[("job", "a"), ("__name__", "up")][..], false),
            (&[("__name__", "up"), ("job", "")][..], false),
            (&[("job", "a"), ("job", "b")][..], false),
            (&[("", "a")][..], false),
        ] {
            let l = labels(pairs);
            assert_eq!(none.keeps(&l), kept, "{pairs:?}");
            if kept {
                assert_eq!(none.apply(l.clone()).unwrap(), l);
            }
        }
        let dropping = LabelRules {
            drop: vec!["x".into()],
            set: vec![],
        };
        assert!(!dropping.keeps(&labels(&[("__name__", "up")])));
    }

    #[test]
    fn drops_sets_removes_empty_and_sorts() {
        let rules = LabelRules {
            drop: vec!["prometheus_replica".into()],
            set: vec![
                NameValue::new("cluster", "old"),
                NameValue::new("job", "node"),
            ],
        };
        let got = rules
            .apply(labels(&[
                ("__name__", "up"),
                ("prometheus_replica", "prometheus-0"),
                ("job", "x"),
                ("empty", ""),
            ]))
            .unwrap();
        assert_eq!(
            got,
            labels(&[("__name__", "up"), ("cluster", "old"), ("job", "node")])
        );
    }

    #[test]
    fn duplicate_and_empty_names_are_errors() {
        let rules = LabelRules::default();
        assert!(rules.apply(labels(&[("a", "1"), ("a", "2")])).is_err());
        assert!(rules.apply(labels(&[("", "1")])).is_err());
    }
}
