//! Time-series events as columns: the compact form of an append (`AppendColumns`). One
//! timestamp per event, and per tag or field name one column; a tag's values are stored
//! once per batch (a dictionary) and each event refers to its value by number. Appending
//! columns stores exactly the events [`EventColumns::into_events`] gives, in that order.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{BackendError, BackendResult};

use super::Event;

/// Events as columns; the n-th entry of every column belongs to the n-th event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventColumns {
    /// One per event, in append order: their number is the number of events.
    pub timestamps_ms: Vec<i64>,
    /// One column per tag name.
    pub tags: Vec<TagColumn>,
    /// One column per field name.
    pub fields: Vec<FieldColumn>,
}

/// One tag across the events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagColumn {
    /// The tag's name.
    pub name: String,
    /// The values the tag takes in the batch, each once.
    pub dictionary: Vec<String>,
    /// One per event: 0 when the event lacks the tag, else 1 + its value's index in
    /// `dictionary`.
    pub values: Vec<u32>,
}

/// One field across the events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldColumn {
    /// The field's name.
    pub name: String,
    /// One per event (any number where the event lacks the field).
    pub values: Vec<f64>,
    /// Which events have the field: bit `i % 8` (least significant first) of byte `i / 8`
    /// for event `i`. Empty: every event has it.
    pub present: Vec<u8>,
}

impl FieldColumn {
    /// Whether event `i` has the field (of a validated column).
    pub fn has(&self, i: usize) -> bool {
        self.present.is_empty() || self.present.get(i / 8).is_some_and(|byte| byte & (1 << (i % 8)) != 0)
    }
}

impl TagColumn {
    /// Event `i`'s value of the tag (of a validated column), if it has one.
    pub fn value(&self, i: usize) -> Option<&str> {
        let index = self.values.get(i)?.checked_sub(1)?;
        self.dictionary.get(index as usize).map(String::as_str)
    }
}

impl EventColumns {
    /// How many events.
    pub fn len(&self) -> usize {
        self.timestamps_ms.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.timestamps_ms.is_empty()
    }

    /// INVALID_ARGUMENT naming the first field that does not fit: a column of another
    /// length than `timestamps_ms`, a value number past its dictionary, a presence bitmap
    /// of the wrong size, a name used twice.
    pub fn validate(&self) -> BackendResult<()> {
        let n = self.len();
        let mut names = HashSet::new();
        for (i, tag) in self.tags.iter().enumerate() {
            if !names.insert(("tag", tag.name.as_str())) {
                return Err(BackendError::invalid(
                    format!("tags[{i}].name"),
                    format!("tag {:?} has two columns", tag.name),
                ));
            }
            one_per_event(|| format!("tags[{i}].values"), tag.values.len(), n)?;
            let size = tag.dictionary.len();
            if let Some(at) = tag.values.iter().position(|&v| v as usize > size) {
                return Err(BackendError::invalid(
                    format!("tags[{i}].values[{at}]"),
                    format!(
                        "is {}, past the dictionary of {size} (0: no value, k: dictionary[k-1])",
                        tag.values[at]
                    ),
                ));
            }
        }
        for (i, field) in self.fields.iter().enumerate() {
            if !names.insert(("field", field.name.as_str())) {
                return Err(BackendError::invalid(
                    format!("fields[{i}].name"),
                    format!("field {:?} has two columns", field.name),
                ));
            }
            one_per_event(|| format!("fields[{i}].values"), field.values.len(), n)?;
            if !field.present.is_empty() && field.present.len() != n.div_ceil(8) {
                return Err(BackendError::invalid(
                    format!("fields[{i}].present"),
                    format!(
                        "is {} bytes; {n} events take {} (one bit each), or none when all have the field",
                        field.present.len(),
                        n.div_ceil(8)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The events, in order (of validated columns: entries past a column's end are
    /// taken as missing).
    pub fn into_events(self) -> Vec<Event> {
        (0..self.len()).map(|i| self.event(i)).collect()
    }

    /// Event `i`.
    pub fn event(&self, i: usize) -> Event {
        Event {
            timestamp_ms: self.timestamps_ms.get(i).copied().unwrap_or_default(),
            tags: self
                .tags
                .iter()
                .filter_map(|tag| Some((tag.name.clone(), tag.value(i)?.to_string())))
                .collect(),
            fields: self
                .fields
                .iter()
                .filter(|field| field.has(i))
                .filter_map(|field| Some((field.name.clone(), *field.values.get(i)?)))
                .collect(),
        }
    }

    /// `events` as columns (tags and fields in name order, dictionaries in order of first
    /// use, presence bitmaps only where some event lacks the field).
    pub fn from_events(events: &[Event]) -> EventColumns {
        let n = events.len();
        let mut tags: BTreeMap<&str, (TagColumn, HashMap<&str, u32>)> = BTreeMap::new();
        let mut fields: BTreeMap<&str, FieldColumn> = BTreeMap::new();
        for (i, event) in events.iter().enumerate() {
            for (name, value) in &event.tags {
                let (column, numbers) = tags.entry(name).or_insert_with(|| {
                    let column = TagColumn {
                        name: name.clone(),
                        dictionary: Vec::new(),
                        values: vec![0; n],
                    };
                    (column, HashMap::new())
                });
                let number = *numbers.entry(value).or_insert_with(|| {
                    column.dictionary.push(value.clone());
                    column.dictionary.len() as u32
                });
                column.values[i] = number;
            }
            for (name, value) in &event.fields {
                let column = fields.entry(name).or_insert_with(|| FieldColumn {
                    name: name.clone(),
                    values: vec![0.0; n],
                    present: vec![0; n.div_ceil(8)],
                });
                column.values[i] = *value;
                column.present[i / 8] |= 1 << (i % 8);
            }
        }
        EventColumns {
            timestamps_ms: events.iter().map(|e| e.timestamp_ms).collect(),
            tags: tags.into_values().map(|(column, _)| column).collect(),
            fields: fields
                .into_values()
                .map(|mut column| {
                    if (0..n).all(|i| column.has(i)) {
                        column.present.clear();
                    }
                    column
                })
                .collect(),
        }
    }
}

/// INVALID_ARGUMENT naming `field` unless its column has one entry per event.
fn one_per_event(field: impl FnOnce() -> String, len: usize, events: usize) -> BackendResult<()> {
    if len == events {
        return Ok(());
    }
    Err(BackendError::invalid(
        field(),
        format!("has {len} entries for {events} timestamps"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Event> {
        (0..11)
            .map(|i| Event {
                timestamp_ms: 100 + i % 3,
                tags: [("host".to_string(), format!("h{}", i % 2))]
                    .into_iter()
                    .chain((i % 4 == 0).then(|| ("zone".to_string(), "z".to_string())))
                    .collect(),
                fields: [("v".to_string(), i as f64)]
                    .into_iter()
                    .chain((i != 9).then(|| ("w".to_string(), -1.5)))
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn events_go_to_columns_and_back_unchanged() {
        let events = events();
        let columns = EventColumns::from_events(&events);
        columns.validate().expect("valid");
        assert_eq!(columns.len(), 11);
        assert_eq!(columns.tags[0].dictionary, ["h0", "h1"], "each value once");
        assert!(columns.fields[0].present.is_empty(), "every event has v");
        assert_eq!(
            columns.fields[1].present.len(),
            2,
            "w is missing once: 11 bits in 2 bytes"
        );
        assert_eq!(columns.into_events(), events);
        assert_eq!(EventColumns::from_events(&[]).into_events(), Vec::<Event>::new());
    }

    #[test]
    fn malformed_columns_are_refused_naming_the_field() {
        let good = EventColumns::from_events(&events());
        let field = |columns: EventColumns| match columns.validate() {
            Err(BackendError::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut c = good.clone();
        c.tags[1].values.pop();
        assert_eq!(field(c), "tags[1].values");
        let mut c = good.clone();
        c.tags[0].values[4] = 3;
        assert_eq!(field(c), "tags[0].values[4]");
        let mut c = good.clone();
        c.fields[0].values.push(1.0);
        assert_eq!(field(c), "fields[0].values");
        let mut c = good.clone();
        c.fields[1].present.push(0);
        assert_eq!(field(c), "fields[1].present");
        let mut c = good.clone();
        c.fields[1].name = "v".into();
        assert_eq!(field(c), "fields[1].name");
        let mut c = good;
        c.tags[1].name = "host".into();
        assert_eq!(field(c), "tags[1].name");
    }
}
