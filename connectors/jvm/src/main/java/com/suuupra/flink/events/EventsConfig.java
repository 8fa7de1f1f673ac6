package com.suuupra.flink.events;

import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.types.logical.BigIntType;
import org.apache.flink.table.types.logical.BooleanType;
import org.apache.flink.table.types.logical.IntType;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.VarBinaryType;
import org.apache.flink.table.types.logical.VarCharType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;

/**
 * What {@link SequencedEvents} reads and how: Kafka, the registry, the fields to decode, the late rule. Given as
 * JSON by the job that declares it (see connectors/flink/events.py).
 */
final class EventsConfig implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The row's first columns; the decoded fields follow, then {@code high_ms} and {@code is_late}. */
    static final List<String> LEADING = List.of("record_key", "payload", "kafka_topic", "kafka_partition",
            "kafka_offset", "ok", "error", "error_code", "payload_json");
    static final int KEY = 0;
    static final int PAYLOAD = 1;
    static final int TOPIC = 2;
    static final int PARTITION = 3;
    static final int OFFSET = 4;
    static final int OK = 5;
    static final int ERROR = 6;
    static final int ERROR_CODE = 7;
    static final int PAYLOAD_JSON = 8;
    static final int FIRST_FIELD = 9;
    /** rowtime's precision: milliseconds, as the event times are. */
    static final int ROWTIME_PRECISION = 3;

    final String name;
    final String bootstrapServers;
    final Map<String, String> kafkaProperties;
    final List<String> topics;
    final String groupId;
    final boolean bounded;
    final String registryUrl;
    final List<String> fieldNames;
    final List<LogicalType> fieldTypes;
    final String eventTimeField;
    final int eventTimePosition;
    /** Negative: no late rule (every readable event is on time, high_ms is NULL). */
    final long lateBoundMs;
    /** Whether payload_json is filled (it costs a JSON encoding per record; NULL otherwise). */
    final boolean payloadJson;
    final long eventTimeMinMs;
    final long eventTimeMaxMs;
    /**
     * The event types the job's topics may carry: type -> {schema full name, Kafka topic}. Empty: any type (no
     * check). A record of another type, on another topic, or written with another type's schema is dead-lettered.
     */
    final Map<String, String[]> eventTypes;
    /** A string field (or array of strings) longer than this, in UTF-8 bytes, is an invalid value. */
    final long maxStringBytes;
    /**
     * Whether the rows' consumers run in a task of their own, fed by the reading and decoding task: two threads per
     * subtask instead of one, at the price of one copy of each binary row between them.
     */
    final boolean decodeInOwnTask;
    /**
     * Whether the view has a {@code rowtime} column (the event time, the record's Kafka timestamp for a record that
     * could not be read) with the late rule's watermark ({@link LateRuleWatermarks}). Needs a late rule.
     */
    final boolean watermark;
    /**
     * With a watermark: a partition none of whose records the reader emitted while it emitted this many of its other
     * partitions no longer holds the watermark back, until its next record. Negative: never idle.
     */
    final long partitionIdleAfterRecords;

    private EventsConfig(JsonNode json) {
        name = text(json, "name");
        bootstrapServers = text(json, "bootstrap_servers");
        kafkaProperties = new LinkedHashMap<>();
        json.path("kafka_properties").fields().forEachRemaining(e -> kafkaProperties.put(e.getKey(), e.getValue().asText()));
        topics = new ArrayList<>();
        json.path("topics").forEach(topic -> topics.add(topic.asText()));
        groupId = json.hasNonNull("group_id") ? json.get("group_id").asText() : null;
        bounded = json.path("bounded").asBoolean(false);
        registryUrl = text(json, "registry_url");
        fieldNames = new ArrayList<>();
        fieldTypes = new ArrayList<>();
        for (JsonNode field : json.path("fields")) {
            String fieldName = field.get(0).asText();
            LogicalType type = LogicalTypeParser.parse(field.get(1).asText(), EventsConfig.class.getClassLoader());
            switch (type.getTypeRoot()) {
                case VARCHAR, CHAR, BIGINT, INTEGER, DOUBLE, BOOLEAN -> { }
                default -> throw new IllegalArgumentException("field '" + fieldName + "' has type " + type
                        + "; supported: STRING, BIGINT, INT, DOUBLE, BOOLEAN (nested values are in payload_json)");
            }
            if (LEADING.contains(fieldName) || fieldName.equals("high_ms") || fieldName.equals("is_late")
                    || fieldName.equals("watermark_ms") || fieldName.equals(SequencedEvents.ROWTIME)) {
                throw new IllegalArgumentException("field '" + fieldName + "' clashes with a column of the row");
            }
            fieldNames.add(fieldName);
            fieldTypes.add(type.copy(true));
        }
        eventTimeField = text(json, "event_time_field");
        eventTimePosition = fieldNames.indexOf(eventTimeField);
        if (eventTimePosition < 0 || fieldTypes.get(eventTimePosition).getTypeRoot() != LogicalTypeRoot.BIGINT) {
            throw new IllegalArgumentException("the event time field '" + eventTimeField
                    + "' must be one of the decoded fields, as BIGINT (epoch milliseconds)");
        }
        lateBoundMs = json.hasNonNull("late_bound_ms") ? json.get("late_bound_ms").asLong() : -1;
        payloadJson = json.path("payload_json").asBoolean(true);
        eventTimeMinMs = json.path("event_time_min_ms").asLong(Long.MIN_VALUE);
        eventTimeMaxMs = json.path("event_time_max_ms").asLong(Long.MAX_VALUE);
        eventTypes = new LinkedHashMap<>();
        json.path("event_types").fields().forEachRemaining(e -> eventTypes.put(e.getKey(),
                new String[] {e.getValue().path("schema").asText(), e.getValue().path("topic").asText()}));
        maxStringBytes = json.path("max_string_bytes").asLong(Long.MAX_VALUE);
        decodeInOwnTask = json.path("decode_in_own_task").asBoolean(false);
        watermark = json.path("watermark").asBoolean(false);
        partitionIdleAfterRecords = json.path("partition_idle_after_records").asLong(-1);
        if (partitionIdleAfterRecords == 0) {
            throw new IllegalArgumentException(
                    "'partition_idle_after_records' must be positive (or absent: never idle)");
        }
        if (watermark && lateBoundMs < 0) {
            throw new IllegalArgumentException("a watermark needs the late rule ('late_bound_ms'): it follows it");
        }
    }

    static EventsConfig parse(String json) {
        try {
            return new EventsConfig(JSON.readTree(json));
        } catch (IOException error) {
            throw new IllegalArgumentException("the events source configuration is not JSON: " + error.getMessage(),
                    error);
        }
    }

    private static String text(JsonNode json, String key) {
        JsonNode value = json.get(key);
        if (value == null || value.isNull() || value.asText().isEmpty()) {
            throw new IllegalArgumentException("the events source configuration needs '" + key + "'");
        }
        return value.asText();
    }

    int arity() {
        return FIRST_FIELD + fieldNames.size() + (watermark ? 4 : 2);
    }

    int eventTimeColumn() {
        return FIRST_FIELD + eventTimePosition;
    }

    int highPosition() {
        return FIRST_FIELD + fieldNames.size();
    }

    int latePosition() {
        return FIRST_FIELD + fieldNames.size() + 1;
    }

    /** With a watermark: the column that holds the watermark an event was behind when it arrived (NULL if none). */
    int watermarkPosition() {
        return FIRST_FIELD + fieldNames.size() + 2;
    }

    /**
     * With a watermark: the {@code rowtime} column, the record's timestamp as the source assigns it (the event time; the
     * Kafka timestamp of a record that could not be read). A column of the row rather than metadata of the stream: the
     * SQL view then reads the binary row as it is, where a metadata column wrapped every row in a joined row (reading
     * fields through it took 11 % of the task that feeds every query, in a profile).
     */
    int rowtimePosition() {
        return FIRST_FIELD + fieldNames.size() + 3;
    }

    /**
     * The row's type: leading columns, decoded fields (nullable), high_ms, is_late, with a watermark watermark_ms and
     * rowtime.
     */
    RowType rowType() {
        List<RowType.RowField> fields = new ArrayList<>();
        LogicalType[] leading = {new VarBinaryType(VarBinaryType.MAX_LENGTH), new VarBinaryType(VarBinaryType.MAX_LENGTH),
            new VarCharType(false, VarCharType.MAX_LENGTH), new IntType(false), new BigIntType(false),
            new BooleanType(false), VarCharType.STRING_TYPE, VarCharType.STRING_TYPE, VarCharType.STRING_TYPE};
        for (int i = 0; i < LEADING.size(); i++) {
            fields.add(new RowType.RowField(LEADING.get(i), leading[i]));
        }
        for (int i = 0; i < fieldNames.size(); i++) {
            fields.add(new RowType.RowField(fieldNames.get(i), fieldTypes.get(i)));
        }
        fields.add(new RowType.RowField("high_ms", new BigIntType(true)));
        fields.add(new RowType.RowField("is_late", new BooleanType(true)));
        if (watermark) {
            fields.add(new RowType.RowField("watermark_ms", new BigIntType(true)));
            // Nullable, as the metadata column it replaces was: operator state holding it restores from older
            // checkpoints (a row serializer's types must match, nullability included). Never NULL in fact.
            fields.add(new RowType.RowField(
                    SequencedEvents.ROWTIME, new LocalZonedTimestampType(true, ROWTIME_PRECISION)));
        }
        return new RowType(false, fields);
    }
}
