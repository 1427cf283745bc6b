//! Targets on this machine: one YAML file each in a directory.

use std::path::Path;

use super::{Target, parse};
use crate::error::{Error, Result};

pub fn list(dir: &Path) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(targets),
        Err(source) => {
            return Err(Error::ReadFile {
                what: "targets directory",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadFile {
                what: "target",
                path: path.clone(),
                source,
            })?;
            targets.push(parse(&path.display().to_string(), &text)?);
        }
    }
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(targets)
}

pub fn save(dir: &Path, name: &str, text: String) -> Result<()> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::WriteFile {
            what: "target",
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).map_err(failed(&path))
}

pub fn remove(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::remove_file(&path).map_err(|source| Error::WriteFile {
        what: "target",
        path,
        source,
    })
}
