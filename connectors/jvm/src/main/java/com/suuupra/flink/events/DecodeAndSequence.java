package com.suuupra.flink.events;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeHint;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.binary.BinaryRowData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.data.writer.BinaryRowWriter;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.util.Collector;

import com.suuupra.flink.avro.ConfluentAvroReader;
import com.suuupra.flink.avro.JsonBytes;

/**
 * Decodes each Kafka record and applies the late rule, in the task that read it, into one binary row per record.
 *
 * <p>Decoding: Confluent-framed Avro by the writer's schema (from the registry), the asked-for top-level fields by
 * name (absent ones NULL), the rest of the payload as JSON. Strings go from Avro's UTF-8 bytes into the row without
 * ever becoming Java strings. A record that cannot be read, or whose event time is outside the accepted range, is
 * emitted with {@code ok = false}, its key and value bytes, and the reason, for a dead-letter sink. So is a readable
 * one that cannot be a true event of its topic: an event type the topic does not carry, a writer's schema or an
 * {@code event_type} header of another type than its event_type field, or an impossible value (see
 * {@link com.suuupra.flink.avro.WriterSchema#invalidValue}).
 *
 * <p>The late rule (unless the configuration has none): a readable event more than {@code lateBoundMs} older than the
 * newest event already seen in its Kafka partition is marked late. Records of one partition reach this operator in offset order (it is chained to
 * the source's reader of that partition), and the newest time per partition is checkpointed (union state, so a
 * restore at another parallelism still knows every partition's), so the rule decides identically on every run.
 */
final class DecodeAndSequence extends ProcessFunction<RawRecord, RowData> implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;
    static final String INVALID_EVENT_TIME = "invalid_event_time";
    static final String UNKNOWN_EVENT_TYPE = "unknown_event_type";
    static final String SCHEMA_MISMATCH = "schema_mismatch";
    static final String INVALID_VALUE = "invalid_value";

    private final EventsConfig config;

    private transient ConfluentAvroReader avro;
    private transient JsonBytes json;
    private transient String[] names;
    private transient BinaryRowData row;
    private transient BinaryRowWriter writer;
    private transient Map<String, Map<Integer, long[]>> newest;
    private transient ListState<Tuple3<String, Integer, Long>> checkpointed;
    private transient String lastTopic;
    private transient int lastPartition;
    private transient long[] lastNewest;

    DecodeAndSequence(EventsConfig config) {
        this.config = config;
    }

    @Override
    public void open(OpenContext context) {
        avro = new ConfluentAvroReader(config.registryUrl);
        json = new JsonBytes(1024);
        names = config.fieldNames.toArray(new String[0]);
        row = new BinaryRowData(config.arity());
        writer = new BinaryRowWriter(row, 1024);
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        checkpointed = context.getOperatorStateStore().getUnionListState(new ListStateDescriptor<>(
                "newest-event-time-per-partition", TypeInformation.of(new TypeHint<Tuple3<String, Integer, Long>>() {})));
        newest = new HashMap<>();
        for (Tuple3<String, Integer, Long> entry : checkpointed.get()) {
            long[] high = newest.computeIfAbsent(entry.f0, topic -> new HashMap<>())
                    .computeIfAbsent(entry.f1, partition -> new long[] {Long.MIN_VALUE});
            high[0] = Math.max(high[0], entry.f2);
        }
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        checkpointed.clear();
        for (Map.Entry<String, Map<Integer, long[]>> topic : newest.entrySet()) {
            for (Map.Entry<Integer, long[]> partition : topic.getValue().entrySet()) {
                checkpointed.add(Tuple3.of(topic.getKey(), partition.getKey(), partition.getValue()[0]));
            }
        }
    }

    @Override
    public void processElement(RawRecord record, Context context, Collector<RowData> out) {
        writer.reset();
        writer.writeString(EventsConfig.TOPIC, BinaryStringData.fromString(record.topic));
        writer.writeInt(EventsConfig.PARTITION, record.partition);
        writer.writeLong(EventsConfig.OFFSET, record.offset);
        if (!avro.read(record.value)) {
            failed(record, avro.errorCode(), avro.error());
        } else {
            GenericRecord event = avro.record();
            int[] positions = avro.writer().positions(names);
            Object time = config.eventTimePosition < 0 || positions[config.eventTimePosition] < 0
                    ? null : event.get(positions[config.eventTimePosition]);
            String invalid;
            if (!checkEventType(record, event)) {
                // failed() has been called with the reason
            } else if (!(time instanceof Long eventTime) || eventTime < config.eventTimeMinMs
                    || eventTime >= config.eventTimeMaxMs) {
                failed(record, INVALID_EVENT_TIME, config.eventTimeField + " " + time + " of "
                        + avro.writer().fullName() + " is not an epoch-millisecond time in [" + config.eventTimeMinMs
                        + ", " + config.eventTimeMaxMs + ")");
            } else if ((invalid = avro.writer().invalidValue(event, config.maxStringBytes)) != null) {
                failed(record, INVALID_VALUE, avro.writer().fullName() + ": " + invalid);
            } else {
                decoded(event, positions, record, eventTime);
            }
        }
        writer.complete();
        out.collect(row);
    }

    /**
     * Whether the record's event type is one its topic carries, written with that type's schema and not contradicted
     * by its {@code event_type} header; otherwise the record has failed, with the reason.
     */
    private boolean checkEventType(RawRecord record, GenericRecord event) {
        Object value = avro.writer().eventType(event);
        String type = value == null ? null : value.toString();
        if (!config.eventTypes.isEmpty()) {
            String[] expected = type == null ? null : config.eventTypes.get(type);
            if (expected == null || !expected[1].equals(record.topic)) {
                failed(record, UNKNOWN_EVENT_TYPE, "event type '" + clip(type) + "' (schema "
                        + avro.writer().fullName() + ") is not one this job reads from topic " + record.topic);
                return false;
            }
            if (!expected[0].equals(avro.writer().fullName())) {
                failed(record, SCHEMA_MISMATCH, "event type '" + type + "' is written with schema "
                        + avro.writer().fullName() + ", not its own " + expected[0]);
                return false;
            }
        }
        if (record.eventTypeHeader != null && type != null
                && !type.equals(new String(record.eventTypeHeader, StandardCharsets.UTF_8))) {
            failed(record, SCHEMA_MISMATCH, "the event_type header says '"
                    + clip(new String(record.eventTypeHeader, StandardCharsets.UTF_8)) + "', the event says '" + type
                    + "'");
            return false;
        }
        return true;
    }

    private static String clip(String text) {
        return text == null || text.length() <= 100 ? text : text.substring(0, 100) + "...";
    }

    private void failed(RawRecord record, String code, String reason) {
        writeBytes(EventsConfig.KEY, record.key);
        writeBytes(EventsConfig.PAYLOAD, record.value);
        writer.writeBoolean(EventsConfig.OK, false);
        writer.writeString(EventsConfig.ERROR, BinaryStringData.fromString(reason));
        writer.writeString(EventsConfig.ERROR_CODE, BinaryStringData.fromString(code));
        writer.setNullAt(EventsConfig.PAYLOAD_JSON);
        for (int i = 0; i < names.length; i++) {
            writer.setNullAt(EventsConfig.FIRST_FIELD + i);
        }
        writer.setNullAt(config.highPosition());
        writer.setNullAt(config.latePosition());
    }

    private void decoded(GenericRecord event, int[] positions, RawRecord record, long eventTime) {
        // The bytes are only needed to dead-letter a record: a readable one travels without them.
        writer.setNullAt(EventsConfig.KEY);
        writer.setNullAt(EventsConfig.PAYLOAD);
        writer.writeBoolean(EventsConfig.OK, true);
        writer.setNullAt(EventsConfig.ERROR);
        writer.setNullAt(EventsConfig.ERROR_CODE);
        if (config.payloadJson) {
            avro.writer().payloadJson(event, json);
            writer.writeString(EventsConfig.PAYLOAD_JSON, BinaryStringData.fromBytes(json.array(), 0, json.size()));
        } else {
            writer.setNullAt(EventsConfig.PAYLOAD_JSON);
        }
        List<LogicalType> types = config.fieldTypes;
        for (int i = 0; i < names.length; i++) {
            Object value = positions[i] < 0 ? null : event.get(positions[i]);
            write(EventsConfig.FIRST_FIELD + i, types.get(i), value);
        }
        if (config.lateBoundMs < 0) {
            writer.setNullAt(config.highPosition());
            writer.writeBoolean(config.latePosition(), false);
            return;
        }
        long[] high = newestOf(record.topic, record.partition);
        high[0] = Math.max(high[0], eventTime);
        writer.writeLong(config.highPosition(), high[0]);
        writer.writeBoolean(config.latePosition(), eventTime < high[0] - config.lateBoundMs);
    }

    private long[] newestOf(String topic, int partition) {
        if (lastNewest == null || partition != lastPartition || !topic.equals(lastTopic)) {
            lastNewest = newest.computeIfAbsent(topic, name -> new HashMap<>())
                    .computeIfAbsent(partition, number -> new long[] {Long.MIN_VALUE});
            lastTopic = topic;
            lastPartition = partition;
        }
        return lastNewest;
    }

    private void writeBytes(int position, byte[] bytes) {
        if (bytes == null) {
            writer.setNullAt(position);
        } else {
            writer.writeBinary(position, bytes);
        }
    }

    /** One asked-for field; a value of another kind than the column's (a writer's type changed) is NULL. */
    private void write(int position, LogicalType type, Object value) {
        if (value == null) {
            writer.setNullAt(position);
            return;
        }
        switch (type.getTypeRoot()) {
            case VARCHAR, CHAR -> {
                if (value instanceof Utf8 utf8) {
                    writer.writeString(position, BinaryStringData.fromBytes(utf8.getBytes(), 0, utf8.getByteLength()));
                } else if (value instanceof CharSequence || value instanceof GenericEnumSymbol<?>) {
                    writer.writeString(position, BinaryStringData.fromString(value.toString()));
                } else {
                    writer.setNullAt(position);
                }
            }
            case BIGINT -> {
                if (value instanceof Long || value instanceof Integer) {
                    writer.writeLong(position, ((Number) value).longValue());
                } else {
                    writer.setNullAt(position);
                }
            }
            case INTEGER -> {
                if (value instanceof Integer number) {
                    writer.writeInt(position, number);
                } else {
                    writer.setNullAt(position);
                }
            }
            case DOUBLE -> {
                if (value instanceof Number number) {
                    writer.writeDouble(position, number.doubleValue());
                } else {
                    writer.setNullAt(position);
                }
            }
            case BOOLEAN -> {
                if (value instanceof Boolean flag) {
                    writer.writeBoolean(position, flag);
                } else {
                    writer.setNullAt(position);
                }
            }
            default -> throw new IllegalStateException("unsupported field type " + type);
        }
    }
}
