package com.suuupra.flink.avro;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import org.apache.avro.LogicalType;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;

/**
 * A writer's schema, its datum reader, which of its fields payload_json holds (all but the envelope's, sorted by
 * name, keys already written as JSON) and where a reader's named fields are: all computed once per schema id rather
 * than per record.
 */
public final class WriterSchema {
    /** The envelope's fields, which have columns of their own and stay out of payload_json. */
    static final Set<String> ENVELOPE =
            Set.of("event_id", "event_type", "event_time", "producer", "correlation_id", "user_id");
    /**
     * The envelope's ids, UUIDs whatever a writer's schema says: a writer may drop the uuid logical type (a
     * compatible change) or give the field another type, and raw_events stores them in UUID columns, which a
     * non-UUID value would fail the job on.
     */
    static final Set<String> ENVELOPE_UUIDS = Set.of("event_id", "correlation_id", "user_id");

    final Schema schema;
    final GenericDatumReader<GenericRecord> reader;
    /** The last record read with this schema, read into by the next one (ConfluentAvroReader). */
    GenericRecord reusableRecord;
    private final int[] payloadPositions;
    private final byte[][] payloadKeys;
    private String[] lookedUp;
    private int[] positions;
    /** Where event_type is (-1: the writer has none). */
    final int eventTypePosition;
    // What {@link #invalidValue} checks, found once per schema: counts, amounts and durations (int and long fields
    // that are not timestamps), UUID ids, other ids, and every string (top level, or in an array).
    private final Schema.Field[] numbers;
    private final Schema.Field[] uuids;
    private final Schema.Field[] ids;
    private final Schema.Field[] strings;
    private final Schema.Field[] stringArrays;

    WriterSchema(Schema schema) {
        this.schema = schema;
        // Avro's fast reader: a tree of field readers built once per schema, where the default reader walks a
        // resolving grammar and looks up each string field's class for every record. Its own GenericData, so no
        // reader is shared between tasks; no conversions, so timestamps stay longs.
        GenericData fastReading = new GenericData();
        fastReading.setFastReaderEnabled(true);
        this.reader = new GenericDatumReader<>(schema, schema, fastReading);
        List<Schema.Field> fields = new ArrayList<>();
        for (Schema.Field field : schema.getFields()) {
            if (!ENVELOPE.contains(field.name())) {
                fields.add(field);
            }
        }
        fields.sort((a, b) -> a.name().compareTo(b.name()));
        payloadPositions = new int[fields.size()];
        payloadKeys = new byte[fields.size()][];
        for (int i = 0; i < fields.size(); i++) {
            payloadPositions[i] = fields.get(i).pos();
            JsonBytes key = new JsonBytes(32);
            key.writeString(fields.get(i).name());
            key.writeRaw(':');
            payloadKeys[i] = key.toByteArray();
        }
        Schema.Field eventType = schema.getField("event_type");
        eventTypePosition = eventType == null ? -1 : eventType.pos();
        List<Schema.Field> numberFields = new ArrayList<>();
        List<Schema.Field> uuidFields = new ArrayList<>();
        List<Schema.Field> idFields = new ArrayList<>();
        List<Schema.Field> stringFields = new ArrayList<>();
        List<Schema.Field> arrayFields = new ArrayList<>();
        for (Schema.Field field : schema.getFields()) {
            Schema type = nonNull(field.schema());
            LogicalType logical = type.getLogicalType();
            if (ENVELOPE_UUIDS.contains(field.name())) {
                // Whatever its Avro type (a union with int, an enum): the decoded row holds its text, which must be
                // a UUID; invalidValue refuses any other value.
                uuidFields.add(field);
                stringFields.add(field);
                continue;
            }
            switch (type.getType()) {
                case INT, LONG -> {
                    if (logical == null) {
                        numberFields.add(field);
                    }
                }
                case STRING -> {
                    stringFields.add(field);
                    if (logical != null && "uuid".equals(logical.getName())) {
                        uuidFields.add(field);
                    } else if (field.name().endsWith("_id")) {
                        idFields.add(field);
                    }
                }
                case ARRAY -> {
                    if (nonNull(type.getElementType()).getType() == Schema.Type.STRING) {
                        arrayFields.add(field);
                    }
                }
                default -> { }
            }
        }
        numbers = numberFields.toArray(new Schema.Field[0]);
        uuids = uuidFields.toArray(new Schema.Field[0]);
        ids = idFields.toArray(new Schema.Field[0]);
        strings = stringFields.toArray(new Schema.Field[0]);
        stringArrays = arrayFields.toArray(new Schema.Field[0]);
    }

    /** The branch of a ["null", T] union that is not null; any other schema as it is. */
    private static Schema nonNull(Schema schema) {
        if (schema.getType() != Schema.Type.UNION) {
            return schema;
        }
        for (Schema branch : schema.getTypes()) {
            if (branch.getType() != Schema.Type.NULL) {
                return branch;
            }
        }
        return schema;
    }

    /**
     * Why a decoded record holds a value no event of this platform can have, or null when it holds none: a negative
     * count, amount or duration; an id that is empty, a null-ish word ("null", "None", "undefined") or, for a UUID
     * field (the writer's schema says uuid, or one of the envelope's ids), not a UUID or the nil UUID; a string longer
     * than {@code maxStringBytes} (UTF-8).
     */
    public String invalidValue(GenericRecord record, long maxStringBytes) {
        for (Schema.Field field : numbers) {
            if (record.get(field.pos()) instanceof Number number && number.longValue() < 0) {
                return field.name() + " is " + number + ", and no count, amount or duration is negative";
            }
        }
        for (Schema.Field field : strings) {
            Object value = record.get(field.pos());
            long length = value instanceof Utf8 utf8 ? utf8.getByteLength()
                    : value instanceof CharSequence text ? text.length() : 0;
            if (length > maxStringBytes) {
                return field.name() + " is " + length + " bytes long, over the limit of " + maxStringBytes;
            }
        }
        for (Schema.Field field : stringArrays) {
            if (record.get(field.pos()) instanceof Iterable<?> items) {
                long total = 0;
                for (Object item : items) {
                    total += item instanceof Utf8 utf8 ? utf8.getByteLength()
                            : item instanceof CharSequence text ? text.length() : 0;
                }
                if (total > maxStringBytes) {
                    return field.name() + " holds " + total + " bytes of text, over the limit of " + maxStringBytes;
                }
            }
        }
        for (Schema.Field field : uuids) {
            Object value = record.get(field.pos());
            if (value != null && !(value instanceof Utf8 utf8 ? isUuid(utf8) : isUuid(value.toString()))) {
                return field.name() + " '" + clip(value.toString()) + "' is not a UUID (or is the nil UUID)";
            }
        }
        for (Schema.Field field : ids) {
            Object value = record.get(field.pos());
            if (value != null && (!(value instanceof Utf8 utf8) || mayBeNullish(utf8))
                    && isNullish(value.toString())) {
                return field.name() + " '" + clip(value.toString()) + "' is not an id";
            }
        }
        return null;
    }

    /**
     * Writes the record's UUIDs (the fields {@link #invalidValue} checked as UUIDs, so canonical text) in lowercase, as
     * RFC 9562 writes them: an id sent in uppercase then names the same user, content or event as in lowercase in
     * every column, in payload_json and in every distinct count, as it does in a ClickHouse UUID column. An Avro
     * {@link Utf8} is changed in place (the record is the reader's, read into again by the next one); any other text
     * is replaced.
     */
    public void lowercaseUuids(GenericRecord record) {
        for (Schema.Field field : uuids) {
            Object value = record.get(field.pos());
            if (value instanceof Utf8 utf8) {
                byte[] bytes = utf8.getBytes();
                boolean changed = false;
                for (int i = 0; i < utf8.getByteLength(); i++) {
                    // Only the hex letters A-F can be uppercase in a UUID; setting bit 5 lowercases them.
                    if (bytes[i] >= 'A' && bytes[i] <= 'F') {
                        bytes[i] |= 0x20;
                        changed = true;
                    }
                }
                if (changed) {
                    utf8.setByteLength(utf8.getByteLength()); // drops the String and hash Utf8 caches
                }
            } else if (value instanceof CharSequence text) {
                record.put(field.pos(), text.toString().toLowerCase(Locale.ROOT));
            }
        }
    }

    /** 1 for the bytes of a hex digit, 0 for every other byte. */
    private static final byte[] HEX_DIGIT = new byte[256];

    static {
        for (char c : "0123456789abcdefABCDEF".toCharArray()) {
            HEX_DIGIT[c] = 1;
        }
    }

    /**
     * isUuid on Avro's UTF-8 bytes, without making a String of them (every record has several UUIDs). A table
     * lookup per byte rather than range comparisons: random hex digits made those branches mispredict, 190 ns per
     * UUID here against 45-70.
     */
    static boolean isUuid(Utf8 text) {
        if (text.getByteLength() != 36) {
            return false;
        }
        byte[] bytes = text.getBytes();
        if (bytes[8] != '-' || bytes[13] != '-' || bytes[18] != '-' || bytes[23] != '-') {
            return false;
        }
        int allHex = 1;
        int notZero = 0;
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                continue;
            }
            int c = bytes[i] & 0xFF;
            allHex &= HEX_DIGIT[c];
            notZero |= c ^ '0';
        }
        return allHex != 0 && notZero != 0;
    }

    /** Canonical 8-4-4-4-12 hex text, not all zeros. */
    static boolean isUuid(String text) {
        if (text.length() != 36) {
            return false;
        }
        boolean zero = true;
        for (int i = 0; i < 36; i++) {
            char c = text.charAt(i);
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (c != '-') {
                    return false;
                }
            } else if (Character.digit(c, 16) < 0) {
                return false;
            } else if (c != '0') {
                zero = false;
            }
        }
        return !zero;
    }

    /**
     * False when the bytes alone show isNullish would refuse the text (the usual id: more than "undefined"'s nine
     * characters between ASCII ends once ASCII whitespace is stripped), so no String is made for it.
     */
    static boolean mayBeNullish(Utf8 text) {
        byte[] bytes = text.getBytes();
        int start = 0;
        int end = text.getByteLength();
        while (start < end && bytes[start] >= 0 && Character.isWhitespace(bytes[start])) {
            start++;
        }
        while (end > start && bytes[end - 1] >= 0 && Character.isWhitespace(bytes[end - 1])) {
            end--;
        }
        return end - start <= 9 || bytes[start] < 0 || bytes[end - 1] < 0;
    }

    static boolean isNullish(String text) {
        String trimmed = text.strip();
        return trimmed.isEmpty() || trimmed.equalsIgnoreCase("null") || trimmed.equalsIgnoreCase("none")
                || trimmed.equalsIgnoreCase("nil") || trimmed.equalsIgnoreCase("undefined");
    }

    private static String clip(String text) {
        return text.length() <= 64 ? text : text.substring(0, 64) + "...";
    }

    /** The record's event_type as text (null when the writer has no such field or it is null). */
    public Object eventType(GenericRecord record) {
        return eventTypePosition < 0 ? null : record.get(eventTypePosition);
    }

    public String fullName() {
        return schema.getFullName();
    }

    /** The record's non-envelope fields as compact JSON with sorted keys, into {@code out} (reset first). */
    public void payloadJson(GenericRecord record, JsonBytes out) {
        out.reset();
        out.writeRaw('{');
        for (int i = 0; i < payloadPositions.length; i++) {
            if (i > 0) {
                out.writeRaw(',');
            }
            out.writeRaw(payloadKeys[i]);
            out.write(record.get(payloadPositions[i]));
        }
        out.writeRaw('}');
    }

    /**
     * Where each named field is in this writer's records (-1: the writer has no such field). A reader asks with the
     * same names every time, so the answer is kept.
     */
    public int[] positions(String[] names) {
        if (names != lookedUp) {
            int[] found = new int[names.length];
            for (int i = 0; i < names.length; i++) {
                Schema.Field field = schema.getField(names[i]);
                found[i] = field == null ? -1 : field.pos();
            }
            positions = found;
            lookedUp = names;
        }
        return positions;
    }
}
