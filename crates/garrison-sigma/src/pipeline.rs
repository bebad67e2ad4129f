//! Processing pipelines as data: logsource → event conditions, and field mappings.
//!
//! See `pipelines/windows.yml` for the format.

use crate::types::LogSource;
use crate::yaml::{parse_documents, Node};

/// One alternative of a logsource's event selection.
#[derive(Clone, Debug, Default)]
pub struct Branch {
    /// `field[|modifiers]` → value node (a scalar or a list, OR-ed), all AND-ed.
    pub conditions: Vec<(String, Node)>,
    /// Sigma field → event field names for events of this alternative (replaces the Sigma name).
    pub fieldmappings: Vec<(String, Vec<String>)>,
}

/// A logsource mapping: which events a rule with this logsource can match.
#[derive(Clone, Debug, Default)]
pub struct LogsourceMapping {
    pub product: Option<String>,
    pub category: Option<String>,
    pub service: Option<String>,
    /// OR-ed alternatives; empty means no restriction.
    pub branches: Vec<Branch>,
}

impl LogsourceMapping {
    /// How many keys match the rule's logsource, or None when one differs.
    fn specificity(&self, ls: &LogSource) -> Option<usize> {
        let mut n = 0;
        for (want, have) in [
            (&self.product, &ls.product),
            (&self.category, &ls.category),
            (&self.service, &ls.service),
        ] {
            if let Some(w) = want {
                if have.as_deref() != Some(w.as_str()) {
                    return None;
                }
                n += 1;
            }
        }
        Some(n)
    }
}

/// A processing pipeline.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    pub name: String,
    /// Sigma field → alternative event field names tried, in order, after the Sigma name.
    pub fieldmappings: Vec<(String, Vec<String>)>,
    pub logsources: Vec<LogsourceMapping>,
}

/// The pipeline shipped for Windows event logs (Sysmon, Security, PowerShell and the other
/// channels of the Sigma taxonomy; Linux Sysmon too).
pub const WINDOWS_PIPELINE_YAML: &str = include_str!("../pipelines/windows.yml");

fn mapping_list(n: Option<&Node>) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out = Vec::new();
    if let Some(n) = n {
        let m = n.as_map().ok_or("`fieldmappings` must be a map")?;
        for (k, v) in m {
            let key = k
                .scalar_text()
                .ok_or("field mapping key must be a string")?;
            let vals = v.string_list();
            if vals.is_empty() {
                return Err(format!("field mapping `{key}` has no target"));
            }
            out.push((key, vals));
        }
    }
    Ok(out)
}

impl Pipeline {
    /// The shipped Windows pipeline.
    pub fn windows() -> Pipeline {
        Pipeline::from_yaml(WINDOWS_PIPELINE_YAML).expect("shipped windows pipeline is valid")
    }

    /// Parse a pipeline from YAML (see `pipelines/windows.yml`).
    pub fn from_yaml(text: &str) -> Result<Pipeline, String> {
        let docs = parse_documents(text).map_err(|(m, l)| match l {
            Some(l) => format!("line {l}: {m}"),
            None => m,
        })?;
        let doc = docs.into_iter().next().ok_or("empty pipeline")?;
        let mut p = Pipeline {
            name: doc
                .get("name")
                .and_then(|n| n.scalar_text())
                .unwrap_or_default(),
            fieldmappings: mapping_list(doc.get("fieldmappings"))?,
            logsources: Vec::new(),
        };
        if let Some(ls) = doc.get("logsources") {
            let items = match &ls.v {
                crate::yaml::Yaml::Seq(s) => s,
                _ => return Err("`logsources` must be a list".into()),
            };
            for it in items {
                let g = |k: &str| {
                    it.get(k)
                        .and_then(|n| n.scalar_text())
                        .map(|s| s.to_ascii_lowercase())
                };
                let mut m = LogsourceMapping {
                    product: g("product"),
                    category: g("category"),
                    service: g("service"),
                    branches: Vec::new(),
                };
                if let Some(conds) = it.get("conditions") {
                    let list: Vec<&Node> = match &conds.v {
                        crate::yaml::Yaml::Seq(s) => s.iter().collect(),
                        _ => vec![conds],
                    };
                    for c in list {
                        let cm = c.as_map().ok_or_else(|| {
                            format!("line {}: a logsource condition must be a map", c.line)
                        })?;
                        let mut b = Branch::default();
                        for (k, v) in cm {
                            let key = k.scalar_text().unwrap_or_default();
                            if key == "fieldmappings" {
                                b.fieldmappings = mapping_list(Some(v))?;
                            } else {
                                b.conditions.push((key, v.clone()));
                            }
                        }
                        m.branches.push(b);
                    }
                }
                p.logsources.push(m);
            }
        }
        Ok(p)
    }
}

/// The resolved processing for one rule: its event-selection alternatives and field names.
#[derive(Clone, Debug)]
pub struct Resolved<'p> {
    /// Alternatives (OR); one empty branch when the logsource is unknown.
    pub branches: Vec<&'p Branch>,
    pub global: Vec<&'p (String, Vec<String>)>,
}

static EMPTY_BRANCH: Branch = Branch {
    conditions: Vec::new(),
    fieldmappings: Vec::new(),
};

/// Pick the most specific logsource mapping across pipelines (later pipelines win ties).
pub fn resolve<'p>(pipelines: &'p [Pipeline], ls: &LogSource) -> Resolved<'p> {
    let mut best: Option<(usize, &LogsourceMapping)> = None;
    for p in pipelines {
        for m in &p.logsources {
            if let Some(s) = m.specificity(ls) {
                if s > 0 && best.map(|(bs, _)| s >= bs).unwrap_or(true) {
                    best = Some((s, m));
                }
            }
        }
    }
    let branches = match best {
        Some((_, m)) if !m.branches.is_empty() => m.branches.iter().collect(),
        _ => vec![&EMPTY_BRANCH],
    };
    Resolved {
        branches,
        global: pipelines
            .iter()
            .flat_map(|p| p.fieldmappings.iter())
            .collect(),
    }
}

/// Event field names to try for a Sigma field under a branch.
pub fn field_names(field: &str, branch: &Branch, global: &[&(String, Vec<String>)]) -> Vec<String> {
    let mut names: Vec<String> = match branch.fieldmappings.iter().find(|(k, _)| k == field) {
        Some((_, v)) => v.clone(),
        None => vec![field.to_string()],
    };
    for (k, alts) in global.iter().map(|e| (&e.0, &e.1)) {
        if k == field {
            for a in alts {
                if !names.contains(a) {
                    names.push(a.clone());
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_pipeline_parses_and_resolves() {
        let p = Pipeline::windows();
        assert!(p.logsources.len() > 60);
        let ls = LogSource {
            product: Some("windows".into()),
            category: Some("process_creation".into()),
            ..Default::default()
        };
        let binding = [p];
        let r = resolve(&binding, &ls);
        assert_eq!(r.branches.len(), 2);
        assert_eq!(
            field_names("Image", r.branches[1], &r.global),
            vec!["NewProcessName"]
        );
        assert_eq!(
            field_names("Image", r.branches[0], &r.global),
            vec!["Image"]
        );
        assert_eq!(
            field_names("Computer", r.branches[0], &r.global)[..2],
            ["Computer".to_string(), "Hostname".to_string()]
        );
    }
}
