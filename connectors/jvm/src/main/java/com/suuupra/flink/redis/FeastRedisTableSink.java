package com.suuupra.flink.redis;

import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.types.RowKind;

/** The planner's view of a {@link FeastRedisSink}: accepts inserts and upserts (deletes are dropped). */
final class FeastRedisTableSink implements DynamicTableSink {
    private final FeastRedisSink sink;
    private final Integer parallelism;

    FeastRedisTableSink(FeastRedisSink sink, Integer parallelism) {
        this.sink = sink;
        this.parallelism = parallelism;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
        return ChangelogMode.newBuilder()
                .addContainedKind(RowKind.INSERT)
                .addContainedKind(RowKind.UPDATE_AFTER)
                .build();
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
        return SinkV2Provider.of(sink, parallelism);
    }

    @Override
    public DynamicTableSink copy() {
        return new FeastRedisTableSink(sink, parallelism);
    }

    @Override
    public String asSummaryString() {
        return "feast-redis";
    }
}
