//! The rows of `prism_events` as the batcher writes them: straight from an append's
//! columns, borrowed, in ClickHouse's RowBinary through the `clickhouse` crate. No event
//! is turned into owned strings on the way (an append of events becomes columns first),
//! which is what made appends through the proxy a fraction of direct inserts
//! (reports/baseline/backends.md).

use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::interfaces::EventColumns;

/// One append waiting to be written: its events as columns, its stream (prefixed) and
/// the sequence number of its first event (the rest follow, one each).
pub struct Batch {
    pub stream: String,
    pub first_seq: u64,
    columns: EventColumns,
}

impl Batch {
    /// `columns` (validated) of `stream`, numbered from `first_seq`.
    pub fn new(stream: String, first_seq: u64, columns: EventColumns) -> Batch {
        Batch {
            stream,
            first_seq,
            columns,
        }
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Row `i`, borrowed.
    pub fn row(&self, i: usize) -> EventRow<'_> {
        let at = Event { batch: self, i };
        EventRow {
            stream: &self.stream,
            ts: self.columns.timestamps_ms[i],
            seq: self.first_seq + i as u64,
            tag_keys: TagKeys(at),
            tag_values: TagValues(at),
            field_keys: FieldKeys(at),
            field_values: FieldValues(at),
        }
    }
}

/// A row of `prism_events`.
#[derive(clickhouse::Row, serde::Serialize)]
pub struct EventRow<'a> {
    stream: &'a str,
    ts: i64,
    seq: u64,
    tag_keys: TagKeys<'a>,
    tag_values: TagValues<'a>,
    field_keys: FieldKeys<'a>,
    field_values: FieldValues<'a>,
}

/// Event `i` of a batch.
#[derive(Clone, Copy)]
struct Event<'a> {
    batch: &'a Batch,
    i: usize,
}

impl<'a> Event<'a> {
    /// The event's tags: (name, value). Their order in the row's arrays does not matter:
    /// queries look tags up by name.
    fn tags(self) -> impl Iterator<Item = (&'a str, &'a str)> + Clone {
        let Event { batch, i } = self;
        (batch.columns.tags.iter()).filter_map(move |tag| Some((tag.name.as_str(), tag.value(i)?)))
    }

    /// The event's fields: (name, value).
    fn fields(self) -> impl Iterator<Item = (&'a str, f64)> + Clone {
        let Event { batch, i } = self;
        (batch.columns.fields.iter())
            .filter(move |field| field.has(i))
            .map(move |field| (field.name.as_str(), field.values[i]))
    }
}

/// An array column: RowBinary needs its length before its elements.
fn array<S: Serializer, T: Serialize>(
    serializer: S,
    items: impl Iterator<Item = T> + Clone,
) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(items.clone().count()))?;
    for item in items {
        seq.serialize_element(&item)?;
    }
    seq.end()
}

macro_rules! array_column {
    ($name:ident, $items:expr) => {
        struct $name<'a>(Event<'a>);
        impl<'a> Serialize for $name<'a> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[allow(clippy::redundant_closure_call)]
                array(serializer, ($items)(self.0))
            }
        }
    };
}

array_column!(TagKeys, |e: Event<'a>| e.tags().map(|(name, _)| name));
array_column!(TagValues, |e: Event<'a>| e.tags().map(|(_, value)| value));
array_column!(FieldKeys, |e: Event<'a>| e.fields().map(|(name, _)| name));
array_column!(FieldValues, |e: Event<'a>| e.fields().map(|(_, value)| value));
