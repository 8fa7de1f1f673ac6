package com.suuupra.flink.avro;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;

/**
 * A writer's schema, its datum reader, which of its fields payload_json holds (all but the envelope's, sorted by
 * name, keys already written as JSON) and where a reader's named fields are: all computed once per schema id rather
 * than per record.
 */
public final class WriterSchema {
    /** The envelope's fields, which have columns of their own and stay out of payload_json. */
    static final Set<String> ENVELOPE =
            Set.of("event_id", "event_type", "event_time", "producer", "correlation_id", "user_id");

    final Schema schema;
    final GenericDatumReader<GenericRecord> reader;
    private final int[] payloadPositions;
    private final byte[][] payloadKeys;
    private String[] lookedUp;
    private int[] positions;

    WriterSchema(Schema schema) {
        this.schema = schema;
        this.reader = new GenericDatumReader<>(schema);
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
