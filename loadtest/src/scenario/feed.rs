//! Keys and values read from a file (`keyspaces.<k>.file`), once, when the scenario is
//! loaded: CSV with a header naming a `key` column (and optionally `value`), or JSON
//! lines of `{"key": "...", "value": "..."}`. The workload then draws rows by index, with
//! the keyspace's distribution and the scenario's seed, as it draws generated keys.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// The largest feed file read: rows are held in memory for the whole run.
pub const MAX_FEED_BYTES: u64 = 256 * 1024 * 1024;

/// One row: a key, and the value sets of it send (random bytes when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// The rows of a feed file, shared by every worker.
#[derive(Clone, Default)]
pub struct Feed(pub Arc<Vec<Row>>);

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Feed({} rows)", self.0.len())
    }
}

/// Reads `path`; the error names the file and, for a bad row, its line.
pub fn read(path: &Path) -> Result<Feed, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_FEED_BYTES {
        return Err(format!(
            "{shown} is {size} bytes; a feed is held in memory and may be at most {MAX_FEED_BYTES}"
        ));
    }
    let rows = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => csv_rows(path)?,
        Some("jsonl" | "ndjson") => json_rows(path)?,
        _ => return Err(format!("{shown}: expected a .csv or .jsonl file")),
    };
    if rows.is_empty() {
        return Err(format!("{shown} has no rows"));
    }
    Ok(Feed(Arc::new(rows)))
}

fn csv_rows(path: &Path) -> Result<Vec<Row>, String> {
    let shown = path.display();
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let header = reader.headers().map_err(|e| format!("{shown}: {e}"))?.clone();
    let key = header.iter().position(|h| h == "key").ok_or_else(|| {
        format!("{shown}:1: the header must name a `key` column (and may name `value`); it has {header:?}")
    })?;
    let value = header.iter().position(|h| h == "value");
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{shown}: {e}"))?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).map(|s| Bytes::copy_from_slice(s.as_bytes()));
        let key = field(key)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| format!("{shown}:{line}: the key is empty"))?;
        rows.push(Row {
            key,
            value: value.and_then(field),
        });
    }
    Ok(rows)
}

fn json_rows(path: &Path) -> Result<Vec<Row>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        key: String,
        #[serde(default)]
        value: Option<String>,
    }
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed: Line = serde_json::from_str(line).map_err(|e| {
            format!(
                "{shown}:{}:{}: {e}; expected {{\"key\": \"...\", \"value\": \"...\"}}",
                i + 1,
                e.column()
            )
        })?;
        if parsed.key.is_empty() {
            return Err(format!("{shown}:{}: the key is empty", i + 1));
        }
        rows.push(Row {
            key: Bytes::from(parsed.key),
            value: parsed.value.map(Bytes::from),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn csv_and_json_lines_give_the_same_rows() {
        let (_d, csv) = file("k.csv", "id,key,value\n1,user:1,alice\n2,\"user,2\",\"bob\"\"s\"\n");
        let (_e, jsonl) = file(
            "k.jsonl",
            "{\"key\": \"user:1\", \"value\": \"alice\"}\n\n{\"key\": \"user,2\", \"value\": \"bob\\\"s\"}\n",
        );
        let a = read(&csv).unwrap();
        let b = read(&jsonl).unwrap();
        assert_eq!(*a.0, *b.0);
        assert_eq!(a.0[1].key, Bytes::from_static(b"user,2"));
        assert_eq!(a.0[1].value, Some(Bytes::from_static(b"bob\"s")));
        let (_f, keys_only) = file("k.csv", "key\na\nb\n");
        assert_eq!(read(&keys_only).unwrap().0[0].value, None);
    }

    #[test]
    fn bad_feeds_name_the_file_and_line() {
        let (_d, p) = file("k.csv", "name,value\na,1\n");
        assert!(
            read(&p)
                .unwrap_err()
                .contains("k.csv:1: the header must name a `key` column")
        );
        let (_d, p) = file("k.csv", "key,value\na,1\n,2\n");
        assert!(
            read(&p).unwrap_err().contains("k.csv:3: the key is empty"),
            "{}",
            read(&p).unwrap_err()
        );
        let (_d, p) = file("k.jsonl", "{\"key\": \"a\"}\n{\"key\": 5}\n");
        let e = read(&p).unwrap_err();
        assert!(e.contains("k.jsonl:2:") && e.contains("expected"), "{e}");
        let (_d, p) = file("k.jsonl", "{\"key\": \"a\", \"vale\": \"x\"}\n");
        assert!(read(&p).unwrap_err().contains("unknown field `vale`"));
        let (_d, p) = file("k.txt", "a\n");
        assert!(read(&p).unwrap_err().contains("expected a .csv or .jsonl file"));
        let (_d, p) = file("k.csv", "key\n");
        assert!(read(&p).unwrap_err().contains("has no rows"));
        assert!(
            read(Path::new("/nonexistent/k.csv"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
