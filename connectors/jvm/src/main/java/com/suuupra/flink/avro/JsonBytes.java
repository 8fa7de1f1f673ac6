package com.suuupra.flink.avro;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collection;
import java.util.Comparator;
import java.util.Map;
import java.util.TreeMap;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.util.Utf8;

/**
 * Avro values as compact JSON with sorted keys, written as UTF-8 bytes: the text `raw_events.payload` holds for every
 * producer, the same the Python side writes (json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False));
 * ClickHouse's visitParamExtract* finds only `"key":value` without a space. Avro strings arrive as UTF-8 and are
 * escaped byte by byte (every character JSON escapes is ASCII), never decoded.
 */
public final class JsonBytes {
    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
    /**
     * Python's sort_keys order, by code point. String's own order is by UTF-16 unit, which puts a key starting with
     * U+E000-U+FFFF after one starting with an emoji (a surrogate pair).
     */
    private static final Comparator<String> BY_CODE_POINT = (a, b) -> {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int x = a.codePointAt(i);
            int y = b.codePointAt(j);
            if (x != y) {
                return Integer.compare(x, y);
            }
            i += Character.charCount(x);
            j += Character.charCount(y);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    };
    private static final byte[] NULL = "null".getBytes(StandardCharsets.US_ASCII);
    private byte[] bytes;
    private int size;

    public JsonBytes(int capacity) {
        bytes = new byte[capacity];
    }

    public void reset() {
        size = 0;
    }

    public int size() {
        return size;
    }

    /** The backing array, valid up to {@link #size()} until the next write. */
    public byte[] array() {
        return bytes;
    }

    public byte[] toByteArray() {
        return Arrays.copyOf(bytes, size);
    }

    public String toUtf8String() {
        return new String(bytes, 0, size, StandardCharsets.UTF_8);
    }

    private void ensure(int more) {
        if (size + more > bytes.length) {
            bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, size + more));
        }
    }

    void writeRaw(char ascii) {
        ensure(1);
        bytes[size++] = (byte) ascii;
    }

    void writeRaw(byte[] raw) {
        ensure(raw.length);
        System.arraycopy(raw, 0, bytes, size, raw.length);
        size += raw.length;
    }

    void writeAscii(String ascii) {
        ensure(ascii.length());
        for (int i = 0; i < ascii.length(); i++) {
            bytes[size++] = (byte) ascii.charAt(i);
        }
    }

    void write(Object value) {
        if (value == null) {
            writeRaw(NULL);
        } else if (value instanceof Utf8 utf8) {
            writeString(utf8.getBytes(), utf8.getByteLength());
        } else if (value instanceof CharSequence || value instanceof GenericEnumSymbol<?>) {
            writeString(value.toString());
        } else if (value instanceof Boolean || value instanceof Integer || value instanceof Long) {
            writeAscii(value.toString());
        } else if (value instanceof Float || value instanceof Double) {
            double number = ((Number) value).doubleValue();
            writeAscii(Double.isFinite(number) ? Double.toString(number) : "null");
        } else if (value instanceof GenericRecord record) {
            TreeMap<String, Object> fields = new TreeMap<>(BY_CODE_POINT);
            for (Schema.Field field : record.getSchema().getFields()) {
                fields.put(field.name(), record.get(field.pos()));
            }
            writeObject(fields);
        } else if (value instanceof Map<?, ?> map) {
            TreeMap<String, Object> sorted = new TreeMap<>(BY_CODE_POINT);
            map.forEach((key, item) -> sorted.put(key.toString(), item));
            writeObject(sorted);
        } else if (value instanceof Collection<?> items) {
            writeRaw('[');
            boolean first = true;
            for (Object item : items) {
                if (!first) {
                    writeRaw(',');
                }
                first = false;
                write(item);
            }
            writeRaw(']');
        } else if (value instanceof ByteBuffer buffer) {
            ByteBuffer copy = buffer.duplicate();
            byte[] raw = new byte[copy.remaining()];
            copy.get(raw);
            writeString(Base64.getEncoder().encodeToString(raw));
        } else if (value instanceof GenericFixed fixed) {
            writeString(Base64.getEncoder().encodeToString(fixed.bytes()));
        } else {
            writeString(value.toString());
        }
    }

    private void writeObject(TreeMap<String, Object> fields) {
        writeRaw('{');
        boolean first = true;
        for (Map.Entry<String, Object> entry : fields.entrySet()) {
            if (!first) {
                writeRaw(',');
            }
            first = false;
            writeString(entry.getKey());
            writeRaw(':');
            write(entry.getValue());
        }
        writeRaw('}');
    }

    void writeString(String text) {
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        writeString(utf8, utf8.length);
    }

    private void writeString(byte[] utf8, int length) {
        ensure(length + 2);
        bytes[size++] = '"';
        for (int i = 0; i < length; i++) {
            byte b = utf8[i];
            // Bytes of multi-byte characters are negative (as signed bytes): copied as they are.
            if ((b < 0 || b >= 0x20) && b != '"' && b != '\\') {
                bytes[size++] = b;
                continue;
            }
            ensure(length - i + 6);
            bytes[size++] = '\\';
            switch (b) {
                case '"' -> bytes[size++] = '"';
                case '\\' -> bytes[size++] = '\\';
                case '\n' -> bytes[size++] = 'n';
                case '\r' -> bytes[size++] = 'r';
                case '\t' -> bytes[size++] = 't';
                case '\b' -> bytes[size++] = 'b';
                case '\f' -> bytes[size++] = 'f';
                default -> {
                    bytes[size++] = 'u';
                    bytes[size++] = '0';
                    bytes[size++] = '0';
                    bytes[size++] = HEX[(b >> 4) & 0xF];
                    bytes[size++] = HEX[b & 0xF];
                }
            }
        }
        ensure(1);
        bytes[size++] = '"';
    }
}
