package com.suuupra.flink.clickhouse;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.core.memory.MemorySegment;
import org.apache.flink.table.data.DecimalData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.types.logical.DecimalType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/**
 * Writes Flink rows in ClickHouse's RowBinary format, each field as the type its ClickHouse column really has (read
 * from {@code system.columns} when the writer opens), so an INSERT never depends on ClickHouse guessing.
 *
 * <p>A NULL sent to a column that is not Nullable is written as the column's default (zero, empty string), as
 * ClickHouse's own text formats do. A value the column cannot hold (a negative number for a UInt, a date beyond
 * DateTime's range, an unknown Enum name) is refused with the table, column and value named: ClickHouse would
 * otherwise store a wrapped-around number.
 */
final class RowBinaryEncoder {
    private final String table;
    private final Column[] columns;

    private RowBinaryEncoder(String table, Column[] columns) {
        this.table = table;
        this.columns = columns;
    }

    /**
     * An encoder for the sink's fields into the ClickHouse columns {@code names}: each from its position in a row,
     * of its Flink type.
     *
     * @param clickHouseTypes column name to ClickHouse type, as {@code system.columns} lists them
     */
    static RowBinaryEncoder forColumns(String table, List<String> names, int[] positions, List<LogicalType> types,
            Map<String, String> clickHouseTypes) {
        List<String> problems = new ArrayList<>();
        Column[] columns = new Column[names.size()];
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            String clickHouseType = clickHouseTypes.get(name);
            if (clickHouseType == null) {
                problems.add("column '" + name + "' does not exist (the table has " + clickHouseTypes.keySet() + ")");
                continue;
            }
            try {
                columns[i] = Column.of(positions[i], name, types.get(i), clickHouseType);
            } catch (IllegalArgumentException error) {
                problems.add(error.getMessage());
            }
        }
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException("the Flink table does not fit ClickHouse table " + table + ": "
                    + String.join("; ", problems));
        }
        return new RowBinaryEncoder(table, columns);
    }

    /** Appends the row's fields in order. */
    void encode(RowData row, RowBinaryBuffer out) {
        for (Column column : columns) {
            column.write(row, out, table);
        }
    }

    /** Appends only the listed fields (a key, to compare rows by). */
    void encodeFields(RowData row, int[] fields, RowBinaryBuffer out) {
        for (int field : fields) {
            columns[field].write(row, out, table);
        }
    }

    /** Appends the row's listed fields and every other column's default (how a deleted key is written). */
    void encodeKeyWithDefaults(RowData row, int[] keyFields, RowBinaryBuffer out) {
        boolean[] isKey = new boolean[columns.length];
        for (int field : keyFields) {
            isKey[field] = true;
        }
        for (int i = 0; i < columns.length; i++) {
            if (isKey[i]) {
                columns[i].write(row, out, table);
            } else {
                columns[i].writeDefault(out);
            }
        }
    }

    /** One sink field, written as its ClickHouse column's type. */
    private static final class Column {

        final String name;
        final boolean nullable;
        final int position;
        final RowData.FieldGetter getter;
        final ValueWriter writer;

        private Column(String name, boolean nullable, int position, RowData.FieldGetter getter, ValueWriter writer) {
            this.name = name;
            this.nullable = nullable;
            this.position = position;
            this.getter = getter;
            this.writer = writer;
        }

        static Column of(int position, String name, LogicalType flinkType, String clickHouseType) {
            String type = unwrap(clickHouseType.trim(), "LowCardinality");
            boolean nullable = type.startsWith("Nullable(");
            if (nullable) {
                type = unwrap(type, "Nullable");
            }
            ValueWriter writer = ValueWriter.of(name, flinkType, unwrap(type, "LowCardinality"));
            return new Column(name, nullable, position, RowData.createFieldGetter(flinkType, position), writer);
        }

        void write(RowData row, RowBinaryBuffer out, String table) {
            boolean isNull = row.isNullAt(position);
            if (nullable) {
                out.putByte(isNull ? 1 : 0);
                if (isNull) {
                    return;
                }
            } else if (isNull) {
                writer.writeDefault(out);
                return;
            }
            try {
                writer.writeField(row, position, getter, out);
            } catch (IllegalArgumentException error) {
                throw new IllegalArgumentException(
                        "cannot write into " + table + "." + name + ": " + error.getMessage(), error);
            }
        }

        void writeDefault(RowBinaryBuffer out) {
            if (nullable) {
                out.putByte(1);
            } else {
                writer.writeDefault(out);
            }
        }

        private static String unwrap(String type, String wrapper) {
            String prefix = wrapper + "(";
            return type.startsWith(prefix) && type.endsWith(")")
                    ? type.substring(prefix.length(), type.length() - 1).trim() : type;
        }
    }

    /** Writes one non-null value of a Flink type as one ClickHouse type. */
    private abstract static class ValueWriter {
        static final Pattern FIXED_STRING = Pattern.compile("FixedString\\((\\d+)\\)");
        static final Pattern DATETIME64 = Pattern.compile("DateTime64\\((\\d)(?:,.*)?\\)");
        static final Pattern DECIMAL = Pattern.compile("Decimal(32|64|128|256)?\\((\\d+)(?:,\\s*(\\d+))?\\)");
        static final Pattern ENUM = Pattern.compile("Enum(8|16)\\((.*)\\)");
        static final Pattern ENUM_ITEM = Pattern.compile("'((?:[^'\\\\]|\\\\.)*)'\\s*=\\s*(-?\\d+)");

        abstract void write(Object value, RowBinaryBuffer out);

        /**
         * Writes the non-null field at {@code position} of {@code row} ({@code getter} reads it as an object). The
         * writers of strings and integers read the field themselves: no boxed value per field of every row.
         */
        void writeField(RowData row, int position, RowData.FieldGetter getter, RowBinaryBuffer out) {
            write(getter.getFieldOrNull(row), out);
        }

        abstract void writeDefault(RowBinaryBuffer out);

        static ValueWriter of(String name, LogicalType flinkType, String clickHouseType) {
            LogicalTypeRoot root = flinkType.getTypeRoot();
            String base = clickHouseType.contains("(")
                    ? clickHouseType.substring(0, clickHouseType.indexOf('(')) : clickHouseType;
            ValueWriter writer = switch (base) {
                case "String" -> isText(root) ? new StringWriter(0) : null;
                case "FixedString" -> isText(root) ? new StringWriter(group(FIXED_STRING, clickHouseType, 1)) : null;
                case "UUID" -> isText(root) ? new UuidWriter() : null;
                case "Enum8", "Enum16" -> isText(root) ? EnumWriter.parse(clickHouseType) : null;
                case "Int8" -> IntegerWriter.of(root, 1, Byte.MIN_VALUE, Byte.MAX_VALUE);
                case "Int16" -> IntegerWriter.of(root, 2, Short.MIN_VALUE, Short.MAX_VALUE);
                case "Int32" -> IntegerWriter.of(root, 4, Integer.MIN_VALUE, Integer.MAX_VALUE);
                case "Int64" -> IntegerWriter.of(root, 8, Long.MIN_VALUE, Long.MAX_VALUE);
                case "UInt8", "Bool" -> IntegerWriter.of(root, 1, 0, 0xFFL);
                case "UInt16" -> IntegerWriter.of(root, 2, 0, 0xFFFFL);
                case "UInt32" -> IntegerWriter.of(root, 4, 0, 0xFFFF_FFFFL);
                case "UInt64" -> IntegerWriter.of(root, 8, 0, Long.MAX_VALUE);
                case "Float32", "Float64" -> FloatWriter.of(root, base.equals("Float32"));
                case "Date" -> root == LogicalTypeRoot.DATE ? new DateWriter() : null;
                case "DateTime" -> TimestampWriter.of(root, -1);
                case "DateTime64" -> TimestampWriter.of(root, group(DATETIME64, clickHouseType, 1));
                case "Decimal", "Decimal32", "Decimal64", "Decimal128" ->
                        root == LogicalTypeRoot.DECIMAL ? DecimalWriter.parse(clickHouseType, (DecimalType) flinkType)
                                : null;
                default -> null;
            };
            if (writer == null) {
                throw new IllegalArgumentException("column '" + name + "' is " + clickHouseType + " in ClickHouse; a "
                        + flinkType.asSummaryString() + " cannot be written into it");
            }
            return writer;
        }

        private static boolean isText(LogicalTypeRoot root) {
            return root == LogicalTypeRoot.VARCHAR || root == LogicalTypeRoot.CHAR;
        }

        private static int group(Pattern pattern, String text, int group) {
            Matcher match = pattern.matcher(text);
            if (!match.matches()) {
                throw new IllegalArgumentException("unsupported ClickHouse type " + text);
            }
            return Integer.parseInt(match.group(group));
        }

        static void putUtf8(StringData value, RowBinaryBuffer out) {
            if (value instanceof BinaryStringData binary && binary.getJavaObject() == null) {
                MemorySegment[] segments = binary.getSegments();
                if (segments.length == 1) {
                    int length = binary.getSizeInBytes();
                    out.putVarUInt(length);
                    int start = out.advance(length);
                    segments[0].get(binary.getOffset(), out.array(), start, length);
                    return;
                }
            }
            byte[] bytes = value instanceof BinaryStringData binary && binary.getJavaObject() != null
                    ? binary.getJavaObject().getBytes(StandardCharsets.UTF_8) : value.toBytes();
            out.putVarUInt(bytes.length);
            out.putBytes(bytes, 0, bytes.length);
        }
    }

    private static final class StringWriter extends ValueWriter {
        private final int fixedLength;

        StringWriter(int fixedLength) {
            this.fixedLength = fixedLength;
        }

        @Override
        void writeField(RowData row, int position, RowData.FieldGetter getter, RowBinaryBuffer out) {
            if (fixedLength == 0) {
                putUtf8(row.getString(position), out);
            } else {
                write(row.getString(position), out);
            }
        }

        @Override
        void write(Object value, RowBinaryBuffer out) {
            if (fixedLength == 0) {
                putUtf8((StringData) value, out);
                return;
            }
            byte[] bytes = ((StringData) value).toBytes();
            if (bytes.length > fixedLength) {
                throw new IllegalArgumentException(bytes.length + " bytes do not fit FixedString(" + fixedLength + ")");
            }
            out.putBytes(bytes, 0, bytes.length);
            out.putZeros(fixedLength - bytes.length);
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            if (fixedLength == 0) {
                out.putVarUInt(0);
            } else {
                out.putZeros(fixedLength);
            }
        }
    }

    /** RowBinary's UUID: the high 64 bits, then the low 64 bits, each little-endian. */
    private static final class UuidWriter extends ValueWriter {
        /** A hex digit's value by its byte, -1 for every other byte. */
        private static final byte[] HEX_VALUE = new byte[256];

        static {
            Arrays.fill(HEX_VALUE, (byte) -1);
            String digits = "0123456789abcdef";
            for (int i = 0; i < 16; i++) {
                HEX_VALUE[digits.charAt(i)] = (byte) i;
                HEX_VALUE[Character.toUpperCase(digits.charAt(i))] = (byte) i;
            }
        }

        /** The 36 bytes of the UUID being written (a writer serves one task thread). */
        private final byte[] text = new byte[36];

        @Override
        void writeField(RowData row, int position, RowData.FieldGetter getter, RowBinaryBuffer out) {
            write(row.getString(position), out);
        }

        @Override
        void write(Object value, RowBinaryBuffer out) {
            // A decoded event's ids are canonical UUID text in a binary string: read from its bytes, without a String
            // and a java.util.UUID per id (three per raw event).
            if (value instanceof BinaryStringData binary && binary.getJavaObject() == null
                    && binary.getSizeInBytes() == 36 && binary.getSegments().length == 1) {
                binary.getSegments()[0].get(binary.getOffset(), text, 0, 36);
                long high = 0;
                long low = 0;
                int invalid = 0;
                for (int i = 0; i < 36; i++) {
                    if (i == 8 || i == 13 || i == 18 || i == 23) {
                        invalid |= text[i] ^ '-';
                        continue;
                    }
                    int digit = HEX_VALUE[text[i] & 0xFF];
                    invalid |= digit >> 31;
                    if (i < 18) {
                        high = high << 4 | digit;
                    } else {
                        low = low << 4 | digit;
                    }
                }
                if (invalid == 0) {
                    out.putLongLE(high);
                    out.putLongLE(low);
                    return;
                }
            }
            UUID uuid;
            try {
                uuid = UUID.fromString(value.toString());
            } catch (IllegalArgumentException error) {
                throw new IllegalArgumentException("'" + value + "' is not a UUID", error);
            }
            out.putLongLE(uuid.getMostSignificantBits());
            out.putLongLE(uuid.getLeastSignificantBits());
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            out.putZeros(16);
        }
    }

    private static final class EnumWriter extends ValueWriter {
        private final boolean wide;
        private final Map<String, Integer> values;
        private final int first;

        private EnumWriter(boolean wide, Map<String, Integer> values, int first) {
            this.wide = wide;
            this.values = values;
            this.first = first;
        }

        static EnumWriter parse(String type) {
            Matcher match = ENUM.matcher(type);
            if (!match.matches()) {
                throw new IllegalArgumentException("unsupported ClickHouse type " + type);
            }
            Map<String, Integer> values = new HashMap<>();
            Matcher item = ENUM_ITEM.matcher(match.group(2));
            int first = Integer.MAX_VALUE;
            while (item.find()) {
                int number = Integer.parseInt(item.group(2));
                values.put(item.group(1).replaceAll("\\\\(.)", "$1"), number);
                first = Math.min(first, number);
            }
            return new EnumWriter(match.group(1).equals("16"), values, first);
        }

        @Override
        void write(Object value, RowBinaryBuffer out) {
            Integer number = values.get(value.toString());
            if (number == null) {
                throw new IllegalArgumentException("'" + value + "' is none of the Enum's names " + values.keySet());
            }
            put(number, out);
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            put(first, out);
        }

        private void put(int number, RowBinaryBuffer out) {
            if (wide) {
                out.putShortLE(number);
            } else {
                out.putByte(number);
            }
        }
    }

    private static final class IntegerWriter extends ValueWriter {
        private final LogicalTypeRoot source;
        private final int bytes;
        private final long min;
        private final long max;

        private IntegerWriter(LogicalTypeRoot source, int bytes, long min, long max) {
            this.source = source;
            this.bytes = bytes;
            this.min = min;
            this.max = max;
        }

        static IntegerWriter of(LogicalTypeRoot source, int bytes, long min, long max) {
            return switch (source) {
                case BOOLEAN, TINYINT, SMALLINT, INTEGER, BIGINT -> new IntegerWriter(source, bytes, min, max);
                default -> null;
            };
        }

        @Override
        void writeField(RowData row, int position, RowData.FieldGetter getter, RowBinaryBuffer out) {
            putChecked(switch (source) {
                case BOOLEAN -> row.getBoolean(position) ? 1 : 0;
                case TINYINT -> row.getByte(position);
                case SMALLINT -> row.getShort(position);
                case INTEGER -> row.getInt(position);
                default -> row.getLong(position);
            }, out);
        }

        @Override
        void write(Object value, RowBinaryBuffer out) {
            putChecked(switch (source) {
                case BOOLEAN -> (Boolean) value ? 1 : 0;
                case TINYINT -> (Byte) value;
                case SMALLINT -> (Short) value;
                case INTEGER -> (Integer) value;
                default -> (Long) value;
            }, out);
        }

        private void putChecked(long number, RowBinaryBuffer out) {
            if (number < min || number > max) {
                throw new IllegalArgumentException(number + " is outside [" + min + ", " + max + "]");
            }
            put(number, out);
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            put(0, out);
        }

        private void put(long number, RowBinaryBuffer out) {
            switch (bytes) {
                case 1 -> out.putByte((int) number);
                case 2 -> out.putShortLE((int) number);
                case 4 -> out.putIntLE((int) number);
                default -> out.putLongLE(number);
            }
        }
    }

    private static final class FloatWriter extends ValueWriter {
        private final boolean single;

        private FloatWriter(boolean single) {
            this.single = single;
        }

        static FloatWriter of(LogicalTypeRoot source, boolean single) {
            return switch (source) {
                case FLOAT, DOUBLE, TINYINT, SMALLINT, INTEGER, BIGINT -> new FloatWriter(single);
                default -> null;
            };
        }

        @Override
        void write(Object value, RowBinaryBuffer out) {
            double number = ((Number) value).doubleValue();
            if (single) {
                out.putIntLE(Float.floatToRawIntBits((float) number));
            } else {
                out.putLongLE(Double.doubleToRawLongBits(number));
            }
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            if (single) {
                out.putIntLE(0);
            } else {
                out.putLongLE(0);
            }
        }
    }

    private static final class DateWriter extends ValueWriter {

        @Override
        void write(Object value, RowBinaryBuffer out) {
            int days = (Integer) value;
            if (days < 0 || days > 0xFFFF) {
                throw new IllegalArgumentException("day " + days + " since 1970 is outside Date's range");
            }
            out.putShortLE(days);
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            out.putShortLE(0);
        }
    }

    /** TIMESTAMP (read as UTC, the jobs' session time zone) or TIMESTAMP_LTZ into DateTime or DateTime64(p). */
    private static final class TimestampWriter extends ValueWriter {
        private static final long MAX_DATETIME = 0xFFFF_FFFFL;
        private final int precision;

        private TimestampWriter(int precision) {
            this.precision = precision;
        }

        static TimestampWriter of(LogicalTypeRoot source, int precision) {
            return source == LogicalTypeRoot.TIMESTAMP_WITHOUT_TIME_ZONE
                    || source == LogicalTypeRoot.TIMESTAMP_WITH_LOCAL_TIME_ZONE ? new TimestampWriter(precision) : null;
        }

        @Override
        void write(Object value, RowBinaryBuffer out) {
            TimestampData timestamp = (TimestampData) value;
            long millis = timestamp.getMillisecond();
            if (precision < 0) {
                long seconds = Math.floorDiv(millis, 1000L);
                if (seconds < 0 || seconds > MAX_DATETIME) {
                    throw new IllegalArgumentException(timestamp + " is outside DateTime's range (1970 to 2106)");
                }
                out.putIntLE((int) seconds);
                return;
            }
            long nanos = millis * 1_000_000L + timestamp.getNanoOfMillisecond();
            long ticks = Math.floorDiv(nanos, (long) Math.pow(10, 9 - precision));
            out.putLongLE(ticks);
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            if (precision < 0) {
                out.putIntLE(0);
            } else {
                out.putLongLE(0);
            }
        }
    }

    private static final class DecimalWriter extends ValueWriter {
        private final int bytes;
        private final int scale;

        private DecimalWriter(int bytes, int scale) {
            this.bytes = bytes;
            this.scale = scale;
        }

        static DecimalWriter parse(String type, DecimalType flinkType) {
            Matcher match = DECIMAL.matcher(type);
            if (!match.matches()) {
                throw new IllegalArgumentException("unsupported ClickHouse type " + type);
            }
            int precision;
            int scale;
            if (match.group(1) == null) {
                precision = Integer.parseInt(match.group(2));
                scale = match.group(3) == null ? 0 : Integer.parseInt(match.group(3));
            } else {
                precision = switch (match.group(1)) {
                    case "32" -> 9;
                    case "64" -> 18;
                    case "128" -> 38;
                    default -> 76;
                };
                scale = Integer.parseInt(match.group(2));
            }
            if (scale != flinkType.getScale()) {
                throw new IllegalArgumentException(
                        type + " has scale " + scale + ", the Flink column " + flinkType.getScale());
            }
            int bytes = precision <= 9 ? 4 : precision <= 18 ? 8 : precision <= 38 ? 16 : 32;
            return new DecimalWriter(bytes, scale);
        }

        @Override
        void write(Object value, RowBinaryBuffer out) {
            DecimalData decimal = (DecimalData) value;
            if (bytes <= 8 && decimal.isCompact()) {
                long unscaled = decimal.toUnscaledLong();
                if (bytes == 4) {
                    out.putIntLE((int) unscaled);
                } else {
                    out.putLongLE(unscaled);
                }
                return;
            }
            BigInteger unscaled = decimal.toBigDecimal().setScale(scale).unscaledValue();
            byte[] bigEndian = unscaled.toByteArray();
            if (bigEndian.length > bytes) {
                throw new IllegalArgumentException(decimal + " does not fit " + bytes + " bytes");
            }
            byte sign = (byte) (unscaled.signum() < 0 ? -1 : 0);
            for (int i = 0; i < bytes; i++) {
                int index = bigEndian.length - 1 - i;
                out.putByte(index >= 0 ? bigEndian[index] : sign);
            }
        }

        @Override
        void writeDefault(RowBinaryBuffer out) {
            out.putZeros(bytes);
        }
    }
}
