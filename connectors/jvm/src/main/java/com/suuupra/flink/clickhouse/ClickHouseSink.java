package com.suuupra.flink.clickhouse;

import java.io.IOException;

import org.apache.flink.api.common.TaskInfo;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.table.data.RowData;

/** A ClickHouse table as a Flink sink: batched RowBinary inserts over HTTP, at least once (see the writer). */
final class ClickHouseSink implements Sink<RowData> {
    private static final long serialVersionUID = 1L;

    private final ClickHouseSinkConfig config;

    ClickHouseSink(ClickHouseSinkConfig config) {
        this.config = config;
    }

    @Override
    public SinkWriter<RowData> createWriter(WriterInitContext context) throws IOException {
        TaskInfo task = context.getTaskInfo();
        String thread = "clickhouse-insert " + config.database + "." + config.table + " ("
                + (task.getIndexOfThisSubtask() + 1) + "/" + task.getNumberOfParallelSubtasks() + ")";
        return new ClickHouseSinkWriter(config, context.getProcessingTimeService(), thread);
    }
}
