//! `explain` diagnoses: facts, causes and changes.
use crate::v1;
use halfopen_core::{Change, Diagnosis};

pub fn diagnosis_to_wire(d: &Diagnosis) -> v1::Diagnosis {
    v1::Diagnosis {
        target: d.target.clone(),
        title: d.title.clone(),
        facts: d.facts.clone(),
        causes: d.causes.clone(),
        changes: d
            .changes
            .iter()
            .map(|c| v1::Change {
                setting: c.setting.clone(),
                current: c.current.clone(),
                suggested: c.suggested.clone(),
                how: c.how.clone(),
            })
            .collect(),
    }
}

pub fn diagnosis_from_wire(d: v1::Diagnosis) -> Diagnosis {
    Diagnosis {
        target: d.target,
        title: d.title,
        facts: d.facts,
        causes: d.causes,
        changes: d
            .changes
            .into_iter()
            .map(|c| Change {
                setting: c.setting,
                current: c.current,
                suggested: c.suggested,
                how: c.how,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnosis_round_trip() {
        let d = Diagnosis {
            target: "db:3306".into(),
            title: "listener 0.0.0.0:3306".into(),
            facts: vec!["accept queue 5 of 4".into()],
            causes: vec!["burst".into(), "small backlog".into()],
            changes: vec![halfopen_core::Change {
                setting: "back_log".into(),
                current: "4".into(),
                suggested: "512".into(),
                how: "my.cnf".into(),
            }],
        };
        assert_eq!(diagnosis_from_wire(diagnosis_to_wire(&d)), d);
    }
}
