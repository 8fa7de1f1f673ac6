package com.suuupra.flink.clickhouse;

import java.util.Optional;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSink;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.ProviderContext;
import org.apache.flink.table.connector.sink.DataStreamSinkProvider;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.data.RowData;
import org.apache.flink.types.RowKind;

/** The SQL side of {@link ClickHouseSink}: upsert mode with a primary key, insert-only without. */
final class ClickHouseTableSink implements DynamicTableSink {
    private final ClickHouseSinkConfig config;
    private final Integer parallelism;
    private final boolean ownTask;

    ClickHouseTableSink(ClickHouseSinkConfig config, Integer parallelism, boolean ownTask) {
        this.config = config;
        this.parallelism = parallelism;
        this.ownTask = ownTask;
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
        if (!ownTask) {
            return SinkV2Provider.of(new ClickHouseSink(config), parallelism);
        }
        return new DataStreamSinkProvider() {
            // The planner plans the exchange before the writer (a keyed shuffle for upserts) from this parallelism.
            @Override
            public Optional<Integer> getParallelism() {
                return Optional.ofNullable(parallelism);
            }

            @Override
            public DataStreamSink<?> consumeDataStream(ProviderContext provider, DataStream<RowData> rows) {
                DataStreamSink<RowData> sink = rows.sinkTo(new ClickHouseSink(config))
                        .name(asSummaryString()).disableChaining();
                provider.generateUid("clickhouse-writer").ifPresent(sink::uid);
                if (parallelism != null) {
                    sink.setParallelism(parallelism);
                }
                return sink;
            }
        };
    }

    @Override
    public DynamicTableSink copy() {
        return new ClickHouseTableSink(config, parallelism, ownTask);
    }

    @Override
    public String asSummaryString() {
        return "ClickHouse(" + config.qualifiedTable() + (config.upsert() ? ", upsert" : ", append") + ")";
    }
}
