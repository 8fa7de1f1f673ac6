package com.suuupra.flink.search;

import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.types.RowKind;

/** The planner's view of an {@link EngineSink}: appends, or upserts when the table declares a primary key. */
final class EngineTableSink implements DynamicTableSink {
    private final EngineSink sink;
    private final boolean upsert;
    private final Integer parallelism;

    EngineTableSink(EngineSink sink, boolean upsert, Integer parallelism) {
        this.sink = sink;
        this.upsert = upsert;
        this.parallelism = parallelism;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
        if (!upsert) {
            return ChangelogMode.insertOnly();
        }
        return ChangelogMode.newBuilder()
                .addContainedKind(RowKind.INSERT)
                .addContainedKind(RowKind.UPDATE_AFTER)
                .addContainedKind(RowKind.DELETE)
                .build();
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
        return SinkV2Provider.of(sink, parallelism);
    }

    @Override
    public DynamicTableSink copy() {
        return new EngineTableSink(sink, upsert, parallelism);
    }

    @Override
    public String asSummaryString() {
        return "redis-engine";
    }
}
