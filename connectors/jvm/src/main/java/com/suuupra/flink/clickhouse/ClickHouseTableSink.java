package com.suuupra.flink.clickhouse;

import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.types.RowKind;

/** The SQL side of {@link ClickHouseSink}: upsert mode with a primary key, insert-only without. */
final class ClickHouseTableSink implements DynamicTableSink {
    private final ClickHouseSinkConfig config;
    private final Integer parallelism;

    ClickHouseTableSink(ClickHouseSinkConfig config, Integer parallelism) {
        this.config = config;
        this.parallelism = parallelism;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
        if (!config.upsert()) {
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
        return SinkV2Provider.of(new ClickHouseSink(config), parallelism);
    }

    @Override
    public DynamicTableSink copy() {
        return new ClickHouseTableSink(config, parallelism);
    }

    @Override
    public String asSummaryString() {
        return "ClickHouse(" + config.qualifiedTable() + (config.upsert() ? ", upsert" : ", append") + ")";
    }
}
