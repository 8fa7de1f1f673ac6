package com.suuupra.flink.events;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceBuilder;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;

/**
 * Domain events from Kafka as a SQL view: each record decoded once and sequenced by the late rule in the task that
 * read it ({@link DecodeAndSequence}), so every branch of a job (raw events, dead letters, aggregates) reads the same
 * binary rows with no per-branch decoding and no conversion to Java objects.
 *
 * <p>Columns: {@code record_key, payload} (bytes, only for records that could not be read), {@code kafka_topic,
 * kafka_partition, kafka_offset, ok, error, error_code, payload_json}, the decoded fields, {@code high_ms} (the newest
 * event time seen in the record's partition so far) and {@code is_late}.
 *
 * <p>From PyFlink: {@code gateway.jvm.com.suuupra.flink.events.SequencedEvents.register(t_env._j_tenv,
 * env._j_stream_execution_environment, config_json)} (connectors/flink/events.py does it).
 */
public final class SequencedEvents {
    private SequencedEvents() {}

    /** Registers the temporary view named by the configuration; resumes from the group's committed offsets. */
    // OffsetResetStrategy is deprecated in Kafka 4's client, but the connector's committedOffsets takes only it.
    @SuppressWarnings("deprecation")
    public static void register(StreamTableEnvironment tableEnv, StreamExecutionEnvironment env, String configJson) {
        EventsConfig config = EventsConfig.parse(configJson);
        KafkaSourceBuilder<RawRecord> builder = KafkaSource.<RawRecord>builder()
                .setBootstrapServers(config.bootstrapServers)
                .setTopics(config.topics)
                .setDeserializer(new RawRecordDeserializer());
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
        DataStream<RawRecord> records = env
                .fromSource(builder.build(), WatermarkStrategy.noWatermarks(), config.name + ": Kafka")
                .uid(config.name + "-kafka");
        DataStream<RowData> rows = records
                .process(new DecodeAndSequence(config), InternalTypeInfo.of(config.rowType()))
                .name(config.name + ": decode, late rule")
                .uid(config.name + "-decode-sequence");
        if (config.decodeInOwnTask) {
            // An identity step that starts a chain: the SQL operators reading the view chain to it, in another task.
            rows = rows.map(row -> row, InternalTypeInfo.of(config.rowType()))
                    .name(config.name + ": hand-over")
                    .uid(config.name + "-hand-over")
                    .startNewChain();
        }
        tableEnv.createTemporaryView(config.name, tableEnv.fromDataStream(rows));
    }
}
