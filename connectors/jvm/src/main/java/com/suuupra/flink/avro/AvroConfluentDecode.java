package com.suuupra.flink.avro;

import java.util.List;
import java.util.Optional;

import org.apache.avro.generic.GenericRecord;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.InputTypeStrategies;
import org.apache.flink.table.types.inference.TypeInference;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.types.Row;

/**
 * Decodes a Confluent-framed Avro record (magic byte 0, 4-byte schema id, Avro body) into the row a job asks for.
 *
 * <pre>decode_avro(payload BYTES, 'http://registry/apis/ccompat/v7', 'ROW&lt;ok BOOLEAN, error STRING,
 *     error_code STRING, payload_json STRING, event_id STRING, event_time BIGINT, ...&gt;')</pre>
 *
 * The third argument names the result: four status fields, then any top-level fields of the writer's record, by
 * name (absent ones are NULL), so records of many writer schemas on one topic land in one wide row. A record that
 * cannot be read does not fail the job: its row has {@code ok = FALSE} and the reason, for a dead-letter sink.
 * An unreachable registry does fail it (the record may be fine): the restart strategy retries from the checkpoint.
 */
public class AvroConfluentDecode extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    private static final int STATUS_FIELDS = 4;

    private transient ConfluentAvroReader avro;
    private transient String registryUrl;
    private transient FieldReader[] readers;
    private transient String[] names;
    private transient JsonBytes json;

    /**
     * Declared non-deterministic so the planner evaluates it once per record: a deterministic call is copied into
     * every projection that reads one of its fields (once per field and per branch of the job).
     */
    @Override
    public boolean isDeterministic() {
        return false;
    }

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        return TypeInference.newBuilder()
                .inputTypeStrategy(InputTypeStrategies.sequence(
                        InputTypeStrategies.explicit(DataTypes.BYTES()),
                        InputTypeStrategies.and(InputTypeStrategies.LITERAL,
                                InputTypeStrategies.explicit(DataTypes.STRING())),
                        InputTypeStrategies.and(InputTypeStrategies.LITERAL,
                                InputTypeStrategies.explicit(DataTypes.STRING()))))
                .outputTypeStrategy(call -> {
                    String declared = call.getArgumentValue(2, String.class).orElseThrow(
                            () -> call.newValidationError("decode_avro: the result type must be a string literal"));
                    DataType type = typeFactory.createDataType(declared);
                    validateResultType(type.getLogicalType());
                    return Optional.of(type);
                })
                .build();
    }

    private static void validateResultType(LogicalType type) {
        if (!(type instanceof RowType row)) {
            throw new IllegalArgumentException("decode_avro: the result type must be a ROW, not " + type);
        }
        List<String> names = row.getFieldNames();
        if (names.size() < STATUS_FIELDS || !names.subList(0, STATUS_FIELDS).equals(
                List.of("ok", "error", "error_code", "payload_json"))) {
            throw new IllegalArgumentException(
                    "decode_avro: the result ROW must start with ok, error, error_code, payload_json; got " + names);
        }
        for (RowType.RowField field : row.getFields().subList(STATUS_FIELDS, names.size())) {
            FieldReader.forType(field.getName(), field.getType()); // throws on an unsupported type
        }
    }

    public Row eval(byte[] payload, String registryUrl, String resultType) {
        if (readers == null) {
            this.registryUrl = registryUrl;
            this.avro = new ConfluentAvroReader(registryUrl);
            this.readers = FieldReader.forRow(resultType);
            this.names = new String[readers.length];
            for (int i = 0; i < readers.length; i++) {
                names[i] = readers[i].name;
            }
            this.json = new JsonBytes(512);
        }
        if (!avro.read(payload)) {
            return failure(avro.errorCode(), avro.error());
        }
        GenericRecord record = avro.record();
        Row row = Row.withPositions(STATUS_FIELDS + readers.length);
        row.setField(0, Boolean.TRUE);
        avro.writer().payloadJson(record, json);
        row.setField(3, json.toUtf8String());
        int[] positions = avro.writer().positions(names);
        for (int i = 0; i < readers.length; i++) {
            Object value = positions[i] < 0 ? null : record.get(positions[i]);
            row.setField(STATUS_FIELDS + i, value == null ? null : readers[i].convert(value));
        }
        return row;
    }

    private Row failure(String code, String reason) {
        Row row = Row.withPositions(STATUS_FIELDS + readers.length);
        row.setField(0, Boolean.FALSE);
        row.setField(1, reason);
        row.setField(2, code);
        return row;
    }

    @Override
    public String toString() {
        return "decode_avro(" + registryUrl + ")";
    }

    /** Reads one top-level field of a record as the external type of its result column. */
    abstract static class FieldReader {
        final String name;

        FieldReader(String name) {
            this.name = name;
        }

        abstract Object convert(Object value);

        static FieldReader[] forRow(String resultType) {
            RowType row = (RowType) org.apache.flink.table.types.logical.utils.LogicalTypeParser.parse(
                    resultType, AvroConfluentDecode.class.getClassLoader());
            List<RowType.RowField> fields = row.getFields();
            FieldReader[] readers = new FieldReader[fields.size() - STATUS_FIELDS];
            for (int i = STATUS_FIELDS; i < fields.size(); i++) {
                readers[i - STATUS_FIELDS] = forType(fields.get(i).getName(), fields.get(i).getType());
            }
            return readers;
        }

        static FieldReader forType(String name, LogicalType type) {
            LogicalTypeRoot root = type.getTypeRoot();
            switch (root) {
                case VARCHAR:
                case CHAR:
                    return new FieldReader(name) {
                        @Override
                        Object convert(Object value) {
                            return value.toString();
                        }
                    };
                case BIGINT:
                    return new FieldReader(name) {
                        @Override
                        Object convert(Object value) {
                            return value instanceof Number number ? number.longValue() : null;
                        }
                    };
                case INTEGER:
                    return new FieldReader(name) {
                        @Override
                        Object convert(Object value) {
                            return value instanceof Number number ? number.intValue() : null;
                        }
                    };
                case DOUBLE:
                    return new FieldReader(name) {
                        @Override
                        Object convert(Object value) {
                            return value instanceof Number number ? number.doubleValue() : null;
                        }
                    };
                case BOOLEAN:
                    return new FieldReader(name) {
                        @Override
                        Object convert(Object value) {
                            return value instanceof Boolean flag ? flag : null;
                        }
                    };
                default:
                    throw new IllegalArgumentException("decode_avro: field '" + name + "' has type " + type
                            + "; supported: STRING, BIGINT, INT, DOUBLE, BOOLEAN (nested values are in payload_json)");
            }
        }
    }
}
