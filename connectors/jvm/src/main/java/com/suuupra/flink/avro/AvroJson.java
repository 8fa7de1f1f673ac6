package com.suuupra.flink.avro;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;

/**
 * The payload of an event as compact JSON with sorted keys: what `raw_events.payload` holds for every producer.
 * Same text as the Python side writes (json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)):
 * ClickHouse's visitParamExtract* finds only `"key":value` without a space.
 */
final class AvroJson {
    static final Set<String> ENVELOPE =
            Set.of("event_id", "event_type", "event_time", "producer", "correlation_id", "user_id");

    private AvroJson() {}

    static String payloadJson(GenericRecord record, Set<String> leaveOut) {
        TreeMap<String, Object> fields = new TreeMap<>();
        for (Schema.Field field : record.getSchema().getFields()) {
            if (!leaveOut.contains(field.name())) {
                fields.put(field.name(), record.get(field.pos()));
            }
        }
        StringBuilder out = new StringBuilder(256);
        writeObject(out, fields);
        return out.toString();
    }

    private static void write(StringBuilder out, Object value) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof CharSequence || value instanceof org.apache.avro.generic.GenericEnumSymbol<?>) {
            writeString(out, value.toString());
        } else if (value instanceof Boolean || value instanceof Integer || value instanceof Long) {
            out.append(value);
        } else if (value instanceof Float || value instanceof Double) {
            double number = ((Number) value).doubleValue();
            out.append(Double.isFinite(number) ? Double.toString(number) : "null");
        } else if (value instanceof GenericRecord record) {
            TreeMap<String, Object> fields = new TreeMap<>();
            for (Schema.Field field : record.getSchema().getFields()) {
                fields.put(field.name(), record.get(field.pos()));
            }
            writeObject(out, fields);
        } else if (value instanceof Map<?, ?> map) {
            TreeMap<String, Object> sorted = new TreeMap<>();
            map.forEach((key, item) -> sorted.put(key.toString(), item));
            writeObject(out, sorted);
        } else if (value instanceof Collection<?> items) {
            List<Object> list = new ArrayList<>(items);
            out.append('[');
            for (int i = 0; i < list.size(); i++) {
                if (i > 0) {
                    out.append(',');
                }
                write(out, list.get(i));
            }
            out.append(']');
        } else if (value instanceof ByteBuffer bytes) {
            ByteBuffer copy = bytes.duplicate();
            byte[] raw = new byte[copy.remaining()];
            copy.get(raw);
            writeString(out, Base64.getEncoder().encodeToString(raw));
        } else if (value instanceof GenericFixed fixed) {
            writeString(out, Base64.getEncoder().encodeToString(fixed.bytes()));
        } else {
            writeString(out, value.toString());
        }
    }

    private static void writeObject(StringBuilder out, TreeMap<String, Object> fields) {
        out.append('{');
        boolean first = true;
        for (Map.Entry<String, Object> entry : fields.entrySet()) {
            if (!first) {
                out.append(',');
            }
            first = false;
            writeString(out, entry.getKey());
            out.append(':');
            write(out, entry.getValue());
        }
        out.append('}');
    }

    private static void writeString(StringBuilder out, String text) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
