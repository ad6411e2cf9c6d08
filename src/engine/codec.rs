//! Ballista's extension codecs with mrpipe's nodes: how a plan's log scan and its
//! in-memory tables travel from the client to the scheduler and on to the executors.
//! Used by the client ([`super::ballista`]) and by the processes ([`super::cluster`]).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use super::log_scan::{LogSource, LogTable, ScanSpec};

/// Largest gRPC message between client, scheduler and executors (bytes): plans carry
/// in-memory tables.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// First bytes of an in-memory table carried by [`LogicalCodec`].
const MEMORY_TABLE: &[u8] = b"mrpipe-memory-table\0";

/// Ballista's logical codec, plus mrpipe's tables: the logs ([`LogTable`], as its scan
/// spec) and tables held in memory (side files and earlier statements' results, as
/// Arrow IPC streams).
#[derive(Debug, Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        if let Some(spec) = ScanSpec::decode(buf) {
            return Ok(Arc::new(LogTable::new(spec?)?));
        }
        if let Some(ipc) = buf.strip_prefix(MEMORY_TABLE) {
            return Ok(Arc::new(MemTable::try_new(schema, decode_partitions(ipc)?)?));
        }
        self.inner.try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        if let Some(table) = node.downcast_ref::<LogTable>() {
            return table.spec.encode(buf);
        }
        if let Some(table) = node.downcast_ref::<MemTable>() {
            buf.extend_from_slice(MEMORY_TABLE);
            return encode_partitions(&table.schema(), table, buf);
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }
}

/// A memory table's partitions: each a length (u64, little-endian) and an Arrow IPC stream.
fn encode_partitions(schema: &SchemaRef, table: &MemTable, buf: &mut Vec<u8>) -> DfResult<()> {
    for partition in &table.batches {
        let batches = partition
            .try_read()
            .map_err(|_| DataFusionError::Internal("a memory table is being written while it is sent".into()))?;
        let mut ipc = Vec::new();
        let mut writer = StreamWriter::try_new(&mut ipc, schema)?;
        for batch in batches.iter() {
            writer.write(batch)?;
        }
        writer.finish()?;
        drop(writer);
        buf.extend_from_slice(&(ipc.len() as u64).to_le_bytes());
        buf.extend_from_slice(&ipc);
    }
    Ok(())
}

fn decode_partitions(mut buf: &[u8]) -> DfResult<Vec<Vec<RecordBatch>>> {
    let damaged = || DataFusionError::Internal("a damaged memory table".into());
    let mut partitions = Vec::new();
    while !buf.is_empty() {
        let (len, rest) = buf.split_first_chunk::<8>().ok_or_else(damaged)?;
        let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| damaged())?;
        let (ipc, rest) = rest.split_at_checked(len).ok_or_else(damaged)?;
        let reader = StreamReader::try_new(ipc, None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<_>, _>>()?);
        buf = rest;
    }
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    Ok(partitions)
}

/// Ballista's physical codec, plus mrpipe's scan of the logs (a file scan of a [`LogSource`],
/// with the parts the task reads).
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match LogSource::decode(buf) {
            Some(scan) => scan,
            None => self.inner.try_decode(buf, inputs, ctx, converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        match LogSource::of_plan(node.as_ref()) {
            Some((source, parts)) => {
                // The scheduler sends a scan task (mid-job): the test of a frozen scheduler.
                crate::failpoint::failpoint("encode-scan-task");
                source.encode(parts, buf)
            }
            None => self.inner.try_encode(node, buf, converter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_tables_round_trip_through_the_codec() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["a", "b"])), Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        let table = MemTable::try_new(schema.clone(), vec![vec![batch.clone()], vec![]]).unwrap();
        let mut buf = Vec::new();
        encode_partitions(&schema, &table, &mut buf).unwrap();
        let back = decode_partitions(&buf).unwrap();
        assert_eq!(back, vec![vec![batch], vec![]]);
        assert!(decode_partitions(&buf[..buf.len() - 3]).is_err(), "a cut table is an error");
    }
}
