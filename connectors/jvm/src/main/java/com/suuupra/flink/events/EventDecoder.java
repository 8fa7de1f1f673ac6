package com.suuupra.flink.events;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.header.Header;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.header.Headers;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.binary.BinaryRowData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.data.writer.BinaryRowWriter;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.util.Collector;

import com.suuupra.flink.avro.ConfluentAvroReader;
import com.suuupra.flink.avro.JsonBytes;

/**
 * Decodes each Kafka record, as the Kafka source's deserializer, into one binary row: in the task that read it, before
 * the source assigns its timestamp and the per-partition watermark ({@link LateRuleWatermarks}) sees it.
 *
 * <p>Confluent-framed Avro by the writer's schema (from the registry), the asked-for top-level fields by name (absent
 * ones NULL), the rest of the payload as JSON. Strings go from Avro's UTF-8 bytes into the row without ever becoming
 * Java strings. A record that cannot be read, or whose event time is outside the accepted range, is emitted with
 * {@code ok = false}, its key and value bytes, and the reason, for a dead-letter sink. So is a readable one that cannot
 * be a true event of its topic: an event type the topic does not carry, a writer's schema or an {@code event_type}
 * header of another type than its event_type field, or an impossible value (see
 * {@link com.suuupra.flink.avro.WriterSchema#invalidValue}). {@code high_ms} and {@code is_late} are left to
 * {@link LateRule}, which keeps the per-partition state the rule needs across restores.
 *
 * <p>The row is reused for every record: the source hands it to the chained {@link LateRule} before the next one is
 * read (the jobs run with object reuse, and nothing downstream in the chain keeps a row it passed on).
 */
final class EventDecoder implements KafkaRecordDeserializationSchema<RowData> {
    private static final long serialVersionUID = 1L;
    /** The header producers put the event type in (suuupra/events.py EVENT_TYPE_HEADER). */
    static final String EVENT_TYPE_HEADER = "event_type";
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
    private transient RawRecord current;
    /** Each topic's name as the row's string: made once, not once per record. */
    private transient Map<String, BinaryStringData> topicNames;
    /** config.eventTypes by the type's UTF-8 bytes, as Avro reads it. */
    private transient Map<Utf8, String[]> eventTypes;

    EventDecoder(EventsConfig config) {
        this.config = config;
    }

    @Override
    public void open(DeserializationSchema.InitializationContext context) {
        avro = new ConfluentAvroReader(config.registryUrl);
        json = new JsonBytes(1024);
        names = config.fieldNames.toArray(new String[0]);
        row = new BinaryRowData(config.arity());
        writer = new BinaryRowWriter(row, 1024);
        current = new RawRecord();
        topicNames = new HashMap<>();
        eventTypes = new HashMap<>();
        config.eventTypes.forEach((type, expected) -> eventTypes.put(new Utf8(type), expected));
    }

    @Override
    public TypeInformation<RowData> getProducedType() {
        return InternalTypeInfo.of(config.rowType());
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> consumerRecord, Collector<RowData> out) {
        RawRecord record = current;
        record.topic = consumerRecord.topic();
        record.partition = consumerRecord.partition();
        record.offset = consumerRecord.offset();
        record.key = consumerRecord.key();
        record.value = consumerRecord.value();
        record.headers = consumerRecord.headers();
        writer.reset();
        writer.writeString(EventsConfig.TOPIC, topicNames.computeIfAbsent(record.topic, BinaryStringData::fromString));
        writer.writeInt(EventsConfig.PARTITION, record.partition);
        writer.writeLong(EventsConfig.OFFSET, record.offset);
        // A record that cannot be read keeps its Kafka timestamp as its time, as the source's timestamp assigner does.
        long rowtime = consumerRecord.timestamp();
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
                avro.writer().lowercaseUuids(event);
                decoded(event, positions);
                rowtime = eventTime;
            }
        }
        if (config.watermark) {
            writer.writeTimestamp(config.rowtimePosition(), TimestampData.fromEpochMillis(rowtime),
                    EventsConfig.ROWTIME_PRECISION);
        }
        writer.complete();
        out.collect(row);
    }

    /**
     * Whether the record's event type is one its topic carries, written with that type's schema and not contradicted
     * by its (last) {@code event_type} header; otherwise the record has failed, with the reason.
     */
    private boolean checkEventType(RawRecord record, GenericRecord event) {
        Object value = avro.writer().eventType(event);
        // Avro reads strings as Utf8: looked up and compared as bytes, not made a String for every record.
        Utf8 type = value == null ? null : value instanceof Utf8 utf8 ? utf8 : new Utf8(value.toString());
        if (!eventTypes.isEmpty()) {
            String[] expected = type == null ? null : eventTypes.get(type);
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
        byte[] header = type == null ? null : contradictingHeader(record.headers, type);
        if (header != null) {
            failed(record, SCHEMA_MISMATCH, "the event_type header says '"
                    + clip(new String(header, StandardCharsets.UTF_8)) + "', the event says '" + type + "'");
            return false;
        }
        return true;
    }

    /**
     * The value of the record's last {@code event_type} header (the one Kafka's {@code lastHeader} returns) if it is
     * neither null nor {@code type}. The key, which Kafka's client decodes into a new String, is read only for a header
     * that can change the answer: one whose value is not the type, or any header after one that contradicted it.
     * Looking the header up by key was a fifth of the source task's samples in a profile, half that now.
     */
    private static byte[] contradictingHeader(Headers headers, Utf8 type) {
        byte[] contradicting = null;
        for (Header header : headers) {
            byte[] value = header.value();
            boolean agrees = value != null
                    && Arrays.equals(value, 0, value.length, type.getBytes(), 0, type.getByteLength());
            if ((!agrees || contradicting != null) && EVENT_TYPE_HEADER.equals(header.key())) {
                contradicting = agrees ? null : value;
            }
        }
        return contradicting;
    }

    private static String clip(Object text) {
        String string = text == null ? null : text.toString();
        return string == null || string.length() <= 100 ? string : string.substring(0, 100) + "...";
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
        if (config.watermark) {
            writer.setNullAt(config.watermarkPosition());
        }
    }

    private void decoded(GenericRecord event, int[] positions) {
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
        // Set by LateRule: the decoder keeps no state.
        writer.setNullAt(config.highPosition());
        writer.writeBoolean(config.latePosition(), false);
        if (config.watermark) {
            writer.setNullAt(config.watermarkPosition());
        }
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
