//! Conversions between the domain types of [`crate::interfaces`] and the generated proto
//! types, shared by the server and the client.

use std::time::Duration;

use prism_proto::{keyvalue::v1 as kv, pubsub::v1 as ps, queue::v1 as q, timeseries::v1 as ts};

use crate::interfaces::{
    AggregateFunction, AggregateRow, Aggregation, Event, EventColumns, FieldColumn, Message, Query, ReceivedMessage,
    TagColumn, TtlState,
};
use crate::{BackendError, BackendResult};

pub fn ttl_to_proto(state: TtlState) -> kv::TtlResponse {
    use kv::ttl_response::State;
    match state {
        TtlState::Missing => kv::TtlResponse {
            state: State::Missing as i32,
            remaining_ms: 0,
        },
        TtlState::Persistent => kv::TtlResponse {
            state: State::Persistent as i32,
            remaining_ms: 0,
        },
        TtlState::Expiring(left) => kv::TtlResponse {
            state: State::Expiring as i32,
            // Never report 0 for a key that is still there.
            remaining_ms: (left.as_millis() as u64).max(1),
        },
    }
}

pub fn ttl_from_proto(response: kv::TtlResponse) -> BackendResult<TtlState> {
    use kv::ttl_response::State;
    match State::try_from(response.state) {
        Ok(State::Missing) => Ok(TtlState::Missing),
        Ok(State::Persistent) => Ok(TtlState::Persistent),
        Ok(State::Expiring) => Ok(TtlState::Expiring(Duration::from_millis(response.remaining_ms))),
        _ => Err(BackendError::Internal(format!("unknown ttl state {}", response.state))),
    }
}

pub fn message_to_proto(m: Message) -> ps::Message {
    ps::Message {
        topic: m.topic,
        payload: m.payload,
        published_at_ms: m.published_at_ms,
    }
}

pub fn message_from_proto(m: ps::Message) -> Message {
    Message {
        topic: m.topic,
        payload: m.payload,
        published_at_ms: m.published_at_ms,
    }
}

pub fn received_to_proto(m: ReceivedMessage) -> q::ReceivedMessage {
    q::ReceivedMessage {
        message_id: m.message_id,
        receipt: m.receipt,
        payload: m.payload,
        delivery_count: m.delivery_count,
    }
}

pub fn received_from_proto(m: q::ReceivedMessage) -> ReceivedMessage {
    ReceivedMessage {
        message_id: m.message_id,
        receipt: m.receipt,
        payload: m.payload,
        delivery_count: m.delivery_count,
    }
}

pub fn event_to_proto(e: Event) -> ts::Event {
    ts::Event {
        timestamp_ms: e.timestamp_ms,
        tags: e.tags.into_iter().collect(),
        fields: e.fields.into_iter().collect(),
    }
}

pub fn event_from_proto(e: ts::Event) -> Event {
    Event {
        timestamp_ms: e.timestamp_ms,
        tags: e.tags.into_iter().collect(),
        fields: e.fields.into_iter().collect(),
    }
}

/// The columns of an `AppendColumns` request, moved (not copied) out of it.
pub fn columns_from_proto(r: ts::AppendColumnsRequest) -> EventColumns {
    EventColumns {
        timestamps_ms: r.timestamps_ms,
        tags: r
            .tags
            .into_iter()
            .map(|t| TagColumn {
                name: t.name,
                dictionary: t.dictionary,
                values: t.values,
            })
            .collect(),
        fields: r
            .fields
            .into_iter()
            .map(|f| FieldColumn {
                name: f.name,
                values: f.values,
                present: f.present.into(),
            })
            .collect(),
    }
}

pub fn columns_to_proto(stream: String, c: EventColumns) -> ts::AppendColumnsRequest {
    ts::AppendColumnsRequest {
        stream,
        timestamps_ms: c.timestamps_ms,
        tags: c
            .tags
            .into_iter()
            .map(|t| ts::TagColumn {
                name: t.name,
                dictionary: t.dictionary,
                values: t.values,
            })
            .collect(),
        fields: c
            .fields
            .into_iter()
            .map(|f| ts::FieldColumn {
                name: f.name,
                values: f.values,
                present: f.present.into(),
            })
            .collect(),
    }
}

pub fn query_to_proto(stream: String, q: Query) -> ts::QueryRequest {
    ts::QueryRequest {
        stream,
        start_ms: q.start_ms,
        end_ms: q.end_ms,
        filters: q.filters.into_iter().collect(),
        limit: q.limit,
    }
}

pub fn query_from_proto(r: &mut ts::QueryRequest) -> Query {
    Query {
        start_ms: r.start_ms,
        end_ms: r.end_ms,
        filters: std::mem::take(&mut r.filters).into_iter().collect(),
        limit: r.limit,
    }
}

fn function_to_proto(f: AggregateFunction) -> ts::AggregateFunction {
    match f {
        AggregateFunction::Count => ts::AggregateFunction::Count,
        AggregateFunction::Sum => ts::AggregateFunction::Sum,
        AggregateFunction::Avg => ts::AggregateFunction::Avg,
        AggregateFunction::Min => ts::AggregateFunction::Min,
        AggregateFunction::Max => ts::AggregateFunction::Max,
        AggregateFunction::P95 => ts::AggregateFunction::P95,
        AggregateFunction::P99 => ts::AggregateFunction::P99,
    }
}

pub fn aggregation_to_proto(stream: String, a: Aggregation) -> ts::AggregateRequest {
    ts::AggregateRequest {
        stream,
        start_ms: a.start_ms,
        end_ms: a.end_ms,
        filters: a.filters.into_iter().collect(),
        bucket_ms: a.bucket_ms,
        metric: a.metric,
        function: function_to_proto(a.function) as i32,
        group_by: a.group_by,
    }
}

pub fn aggregation_from_proto(r: &mut ts::AggregateRequest) -> BackendResult<Aggregation> {
    let function = match ts::AggregateFunction::try_from(r.function) {
        Ok(ts::AggregateFunction::Count) => AggregateFunction::Count,
        Ok(ts::AggregateFunction::Sum) => AggregateFunction::Sum,
        Ok(ts::AggregateFunction::Avg) => AggregateFunction::Avg,
        Ok(ts::AggregateFunction::Min) => AggregateFunction::Min,
        Ok(ts::AggregateFunction::Max) => AggregateFunction::Max,
        Ok(ts::AggregateFunction::P95) => AggregateFunction::P95,
        Ok(ts::AggregateFunction::P99) => AggregateFunction::P99,
        _ => {
            return Err(BackendError::invalid(
                "function",
                "must be one of COUNT, SUM, AVG, MIN, MAX, P95, P99",
            ));
        }
    };
    let aggregation = Aggregation {
        start_ms: r.start_ms,
        end_ms: r.end_ms,
        filters: std::mem::take(&mut r.filters).into_iter().collect(),
        bucket_ms: r.bucket_ms,
        metric: std::mem::take(&mut r.metric),
        function,
        group_by: std::mem::take(&mut r.group_by),
    };
    aggregation.validate()?;
    Ok(aggregation)
}

pub fn row_to_proto(r: AggregateRow) -> ts::AggregateRow {
    ts::AggregateRow {
        bucket_start_ms: r.bucket_start_ms,
        group: r.group.into_iter().collect(),
        value: r.value,
        count: r.count,
    }
}

pub fn row_from_proto(r: ts::AggregateRow) -> AggregateRow {
    AggregateRow {
        bucket_start_ms: r.bucket_start_ms,
        group: r.group.into_iter().collect(),
        value: r.value,
        count: r.count,
    }
}
