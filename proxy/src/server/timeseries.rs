//! gRPC service of timeseries_basic.

use std::sync::Arc;

use prism_proto::timeseries::v1::{self as pb, time_series_basic_server};
use tonic::{Request, Response, Status};

use super::Router;
use crate::Operation;
use crate::wire;

pub struct TimeSeriesService {
    router: Arc<Router>,
}

impl TimeSeriesService {
    pub fn new(router: Arc<Router>) -> TimeSeriesService {
        TimeSeriesService { router }
    }
}

#[tonic::async_trait]
impl time_series_basic_server::TimeSeriesBasic for TimeSeriesService {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::TsAppend,
                |b| &b.timeseries_basic,
                |series, limits, req| async move {
                    limits.check_name("stream", &req.stream)?;
                    limits.check_batch("events", req.events.len())?;
                    let events = req.events.into_iter().map(wire::event_from_proto).collect();
                    Ok(pb::AppendResponse {
                        appended: series.append(req.stream, events).await?,
                    })
                },
            )
            .await
    }

    async fn append_columns(
        &self,
        request: Request<pb::AppendColumnsRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::TsAppendColumns,
                |b| &b.timeseries_basic,
                |series, limits, mut req| async move {
                    limits.check_name("stream", &req.stream)?;
                    limits.check_batch("timestamps_ms", req.timestamps_ms.len())?;
                    let stream = std::mem::take(&mut req.stream);
                    let columns = wire::columns_from_proto(req);
                    columns.validate()?;
                    Ok(pb::AppendResponse {
                        appended: series.append_columns(stream, columns).await?,
                    })
                },
            )
            .await
    }

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::TsQuery,
                |b| &b.timeseries_basic,
                |series, limits, mut req| async move {
                    limits.check_name("stream", &req.stream)?;
                    let mut query = wire::query_from_proto(&mut req);
                    query.limit = limits.query_events(query.limit)?;
                    let events = series.query(req.stream, query).await?;
                    Ok(pb::QueryResponse {
                        events: events.into_iter().map(wire::event_to_proto).collect(),
                    })
                },
            )
            .await
    }

    async fn aggregate(
        &self,
        request: Request<pb::AggregateRequest>,
    ) -> Result<Response<pb::AggregateResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::TsAggregate,
                |b| &b.timeseries_basic,
                |series, limits, mut req| async move {
                    limits.check_name("stream", &req.stream)?;
                    let aggregation = wire::aggregation_from_proto(&mut req)?;
                    let rows = series.aggregate(req.stream, aggregation).await?;
                    Ok(pb::AggregateResponse {
                        rows: rows.into_iter().map(wire::row_to_proto).collect(),
                    })
                },
            )
            .await
    }
}
