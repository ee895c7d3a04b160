//! The one shape of "what is wrong with this input", shared by the proxy config, load
//! scenarios (loadtest) and the Dex config checker (devstack): every problem at once, each
//! with its field path and, where the input is a file, `file:line:column`.

use std::collections::BTreeMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in a text file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The line.
    pub line: usize,
    /// The column (in characters).
    pub column: usize,
}

/// One thing wrong with an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field path (`namespaces.a.limits.max_in_flight`, `load.stages[0].rate`); empty
    /// when the problem is the document as a whole or the message names the field itself.
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// Where, when the input is a file and the field could be found in it.
    pub location: Option<Location>,
}

impl Problem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            message: message.into(),
            location: None,
        }
    }

    /// A YAML syntax or type error as serde_yaml reports it: its message (which already
    /// starts with the field path) and its position.
    pub fn from_yaml(e: &serde_yaml::Error) -> Problem {
        let message = e.to_string();
        // serde_yaml appends "at line L column C"; the location leads ours instead.
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        Problem {
            field: String::new(),
            message,
            location: Some(e.location().map_or(Location { line: 1, column: 1 }, |l| Location {
                line: l.line(),
                column: l.column(),
            })),
        }
    }
}

/// Every problem found in one input: `source` names it (a file path, `(environment)`).
///
/// A `Deserialize` impl that checks a whole section after reading it reports what it
/// found as lines of `field: message` in one custom error; [`Problems::from_yaml_error`]
/// turns those into one problem each, placed at its field.
/// Displayed one per line as `source:line:column: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    /// The input's name, first on every line.
    pub source: String,
    /// The problems, in the order found.
    pub list: Vec<Problem>,
}

impl Problems {
    /// No problems yet, in `source`.
    pub fn new(source: impl Into<String>) -> Problems {
        Problems {
            source: source.into(),
            list: Vec::new(),
        }
    }

    /// The problems of a serde_yaml error on `text`: serde_yaml's own, at its position; or,
    /// for a custom error raised after a section was read (serde_yaml gives it no
    /// position), one per `field: message` line, each at its field in `text`.
    pub fn from_yaml_error(source: impl Into<String>, e: &serde_yaml::Error, text: &str) -> Problems {
        let mut problems = Problems::new(source);
        let whole = Problem::from_yaml(e);
        let at_start = e.location().is_none_or(|l| l.line() <= 1 && l.column() <= 1);
        let is_path = |f: &str| f.starts_with(|c: char| c.is_ascii_alphabetic()) && !f.contains(' ');
        let fields: Option<Vec<(&str, &str)>> = whole
            .message
            .lines()
            .map(|line| line.split_once(": ").filter(|(field, _)| is_path(field)))
            .collect();
        match fields {
            Some(fields) if at_start && !fields.is_empty() => {
                for (field, what) in fields {
                    problems.add(field, what);
                }
                problems.locate_in(text)
            }
            _ => {
                problems.push(whole);
                problems
            }
        }
    }

    /// Adds a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem::new(field, message));
    }

    /// Adds a problem already made.
    pub fn push(&mut self, problem: Problem) {
        self.list.push(problem);
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Gives each problem without a location the position of its field in `text` (or of
    /// the nearest enclosing field written there).
    pub fn locate_in(mut self, text: &str) -> Problems {
        if self.list.iter().all(|p| p.location.is_some()) {
            return self;
        }
        let index = YamlIndex::new(text);
        for problem in &mut self.list {
            if problem.location.is_none() {
                problem.location = index.find(&problem.field);
            }
        }
        self
    }

    /// `Ok` when there are no problems, these problems otherwise.
    pub fn into_result(self) -> Result<(), Problems> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&self.source)?;
            if let Some(l) = p.location {
                write!(f, ":{}:{}", l.line, l.column)?;
            }
            if p.field.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": {}: {}", p.field, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Where each field path of a YAML document is written: mapping keys as `a.b`, sequence
/// items as `a[0]`.
struct YamlIndex {
    paths: BTreeMap<String, Location>,
}

enum Frame {
    /// In a mapping; `key` is the key whose value comes next (None: a key comes next).
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    paths: BTreeMap<String, Location>,
}

impl Indexer {
    /// The path of the node starting now (a value in the current container), recording
    /// where it starts. Returns `None` for a mapping key.
    fn enter(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        let location = Location {
            line: mark.line(),
            column: mark.col() + 1,
        };
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                p
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => join(path, &k),
                None => {
                    // This node is a key: remember it and where it is written.
                    let k = scalar.unwrap_or_default().to_string();
                    let full = join(path, &k);
                    *key = Some(k);
                    self.record(full, location);
                    return None;
                }
            },
        };
        self.record(path.clone(), location);
        Some(path)
    }

    /// Records where `path` starts, and moves each open container's start back to it if
    /// it comes earlier: a block mapping's start event is marked after its first key.
    fn record(&mut self, path: String, location: Location) {
        for frame in &self.stack {
            let (Frame::Map { path: open, .. } | Frame::Seq { path: open, .. }) = frame;
            if let Some(start) = self.paths.get_mut(open) {
                *start = (*start).min(location);
            }
        }
        self.paths.entry(path).or_insert(location);
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => {
                self.enter(mark, Some(&value));
            }
            Event::Alias(_) => {
                self.enter(mark, None);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.enter(mark, None) {
                    self.stack.push(Frame::Map { path, key: None });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(path) = self.enter(mark, None) {
                    self.stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl YamlIndex {
    fn new(text: &str) -> YamlIndex {
        let mut indexer = Indexer::default();
        // A text that does not parse has no positions to offer; its problems stay without.
        let _ = Parser::new_from_str(text).load(&mut indexer, false);
        YamlIndex { paths: indexer.paths }
    }

    /// The position of `path`, or of its nearest written ancestor.
    fn find(&self, path: &str) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(l) = self.paths.get(path) {
                return Some(*l);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: x\nload:\n  stages:\n    - { duration: 10s, rate: -50 }\n    - duration: 5s\n      rate: 3\nlist: [a, b]\n";

    #[test]
    fn field_paths_find_their_line_and_column() {
        let index = YamlIndex::new(TEXT);
        let at = |p: &str| index.find(p).map(|l| (l.line, l.column));
        assert_eq!(at("name"), Some((1, 1)));
        assert_eq!(at("load.stages"), Some((3, 3)));
        assert_eq!(at("load.stages[0]"), Some((4, 7)));
        assert_eq!(at("load.stages[0].rate"), Some((4, 24)));
        assert_eq!(at("load.stages[1].rate"), Some((6, 7)));
        assert_eq!(at("list[1]"), Some((7, 11)));
        // Not written: the nearest ancestor that is.
        assert_eq!(at("load.stages[1].ramp_to"), Some((5, 7)));
        assert_eq!(at("nowhere"), None);
    }

    #[test]
    fn problems_print_one_per_line_with_location_and_field() {
        let mut problems = Problems::new("s.yaml");
        problems.add("load.stages[0].rate", "-50 is not a rate");
        problems.add("thresholds", "missing");
        let text = problems.locate_in(TEXT).to_string();
        assert_eq!(
            text,
            "s.yaml:4:24: load.stages[0].rate: -50 is not a rate\ns.yaml: thresholds: missing"
        );
    }
}
