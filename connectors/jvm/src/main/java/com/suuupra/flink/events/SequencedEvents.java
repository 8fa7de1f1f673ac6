package com.suuupra.flink.events;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceBuilder;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;

/**
 * Domain events from Kafka as a SQL view: each record decoded once by the source that read it ({@link EventDecoder})
 * and sequenced by the late rule chained to it ({@link LateRule}), so every branch of a job (raw events, dead letters,
 * aggregates) reads the same binary rows with no per-branch decoding and no conversion to Java objects.
 *
 * <p>Columns: {@code record_key, payload} (bytes, only for records that could not be read), {@code kafka_topic,
 * kafka_partition, kafka_offset, ok, error, error_code, payload_json}, the decoded fields, {@code high_ms} (the newest
 * event time seen in the record's partition so far) and {@code is_late}; with a watermark also {@code watermark_ms}
 * (the watermark a late event was behind when it arrived, for one the late rule lets through; NULL otherwise) and
 * {@code rowtime} (the event time as a time attribute, with the watermark of {@link LateRuleWatermarks}).
 *
 * <p>From PyFlink: {@code gateway.jvm.com.suuupra.flink.events.SequencedEvents.register(t_env._j_tenv,
 * env._j_stream_execution_environment, config_json)} (connectors/flink/events.py does it).
 */
public final class SequencedEvents {
    /** The view's event-time column, with a watermark, when the configuration asks for one. */
    static final String ROWTIME = "rowtime";

    private SequencedEvents() {}

    /** Registers the temporary view named by the configuration; resumes from the group's committed offsets. */
    // OffsetResetStrategy is deprecated in Kafka 4's client, but the connector's committedOffsets takes only it.
    @SuppressWarnings("deprecation")
    public static void register(StreamTableEnvironment tableEnv, StreamExecutionEnvironment env, String configJson) {
        EventsConfig config = EventsConfig.parse(configJson);
        KafkaSourceBuilder<RowData> builder = KafkaSource.<RowData>builder()
                .setBootstrapServers(config.bootstrapServers)
                .setTopics(config.topics)
                .setDeserializer(new EventDecoder(config));
        config.kafkaProperties.forEach(builder::setProperty);
        if (config.groupId != null) {
            builder.setGroupId(config.groupId)
                    .setStartingOffsets(OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST));
        } else {
            builder.setStartingOffsets(OffsetsInitializer.earliest());
        }
        if (config.bounded) {
            builder.setBounded(OffsetsInitializer.latest());
        }
        DataStream<RowData> records = env
                .fromSource(builder.build(), watermarks(config), config.name + ": Kafka, decode")
                .uid(config.name + "-kafka");
        // The operator's uid is the one it had when it also decoded: its state (the late rule's) is unchanged.
        DataStream<RowData> rows = records
                .transform(config.name + ": late rule", InternalTypeInfo.of(config.rowType()),
                        new LateRule.Operator(new LateRule(config)))
                .uid(config.name + "-decode-sequence");
        if (config.decodeInOwnTask) {
            // An identity step that starts a chain: the SQL operators reading the view chain to it, in another task.
            rows = rows.map(row -> row, InternalTypeInfo.of(config.rowType()))
                    .name(config.name + ": hand-over")
                    .uid(config.name + "-hand-over")
                    .startNewChain();
        }
        if (config.watermark) {
            // rowtime is a column of the row (EventsConfig.rowtimePosition), equal to the record's timestamp.
            tableEnv.createTemporaryView(config.name, tableEnv.fromDataStream(rows, Schema.newBuilder()
                    .watermark(ROWTIME, "SOURCE_WATERMARK()")
                    .build()));
        } else {
            tableEnv.createTemporaryView(config.name, tableEnv.fromDataStream(rows));
        }
    }

    private static WatermarkStrategy<RowData> watermarks(EventsConfig config) {
        return config.watermark ? new LateRuleWatermarks.Strategy(config) : WatermarkStrategy.noWatermarks();
    }
}
