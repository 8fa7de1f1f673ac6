package com.suuupra.flink.redis;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Feast's Redis online-store layout (Feast 0.67, {@code entity_key_serialization_version: 3}), so rows written here
 * are read by {@code FeatureStore.get_online_features} like rows Feast wrote itself.
 *
 * <ul>
 *   <li>key: the serialized entity key followed by the project name;
 *   <li>one hash field per feature: murmur3_32("view:feature") as 4 little-endian bytes -> a serialized
 *       {@code feast.types.Value};
 *   <li>{@code _ts:view} -> a serialized {@code google.protobuf.Timestamp} of the row's event time.
 * </ul>
 * Protobuf is written by hand: three scalar message shapes do not justify a protobuf runtime in the jar.
 */
final class FeastLayout {
    private static final int VALUE_TYPE_STRING = 2; // feast.types.ValueType.STRING

    private FeastLayout() {}

    /** {@code serialize_entity_key} (version 3) of one string join key, then the project. */
    static byte[] entityKey(String joinKey, String value, String project) {
        byte[] name = joinKey.getBytes(StandardCharsets.UTF_8);
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        byte[] projectBytes = project.getBytes(StandardCharsets.UTF_8);
        ByteBuffer buffer = ByteBuffer.allocate(4 * 5 + name.length + bytes.length + projectBytes.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        buffer.putInt(1).putInt(VALUE_TYPE_STRING).putInt(name.length).put(name);
        buffer.putInt(VALUE_TYPE_STRING).putInt(bytes.length).put(bytes);
        buffer.put(projectBytes);
        return buffer.array();
    }

    /** The hash field of a feature: Feast's {@code _mmh3(f"{view}:{feature}")}. */
    static byte[] featureField(String view, String feature) {
        int hash = murmur3((view + ":" + feature).getBytes(StandardCharsets.UTF_8));
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(hash).array();
    }

    /**
     * The sorted set of an entity's recent rows of one view (not part of Feast's layout): {@code asof:<view>:}
     * followed by the entity's Feast key, so it too ends with the project's name.
     */
    static byte[] historyKey(String view, byte[] entityKey) {
        byte[] prefix = ("asof:" + view + ":").getBytes(StandardCharsets.UTF_8);
        byte[] key = new byte[prefix.length + entityKey.length];
        System.arraycopy(prefix, 0, key, 0, prefix.length);
        System.arraycopy(entityKey, 0, key, prefix.length, entityKey.length);
        return key;
    }

    static byte[] timestampField(String view) {
        return ("_ts:" + view).getBytes(StandardCharsets.UTF_8);
    }

    /** {@code google.protobuf.Timestamp} of epoch milliseconds. */
    static byte[] timestamp(long epochMs) {
        long seconds = Math.floorDiv(epochMs, 1000L);
        long nanos = Math.floorMod(epochMs, 1000L) * 1_000_000L;
        ByteArrayOutputStream out = new ByteArrayOutputStream(16);
        if (seconds != 0) {
            out.write(0x08);
            varint(out, seconds);
        }
        if (nanos != 0) {
            out.write(0x10);
            varint(out, nanos);
        }
        return out.toByteArray();
    }

    /** A {@code feast.types.Value}: NULL is the empty message, as Feast writes a missing value. */
    static byte[] int64Value(Long value) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(11);
        if (value != null) {
            out.write(0x20); // field 4 (int64_val), varint
            varint(out, value);
        }
        return out.toByteArray();
    }

    static byte[] int32Value(Integer value) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(11);
        if (value != null) {
            out.write(0x18); // field 3 (int32_val), varint; negatives sign-extended to 64 bits as protobuf does
            varint(out, value.longValue());
        }
        return out.toByteArray();
    }

    static byte[] doubleValue(Double value) {
        if (value == null) {
            return new byte[0];
        }
        // field 5 (double_val), 64-bit
        return ByteBuffer.allocate(9).order(ByteOrder.LITTLE_ENDIAN).put((byte) 0x29).putDouble(value).array();
    }

    static byte[] stringValue(String value) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        if (value != null) {
            byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
            out.write(0x12); // field 2 (string_val), length-delimited
            varint(out, bytes.length);
            out.write(bytes, 0, bytes.length);
        }
        return out.toByteArray();
    }

    private static void varint(ByteArrayOutputStream out, long value) {
        long rest = value;
        while ((rest & ~0x7FL) != 0) {
            out.write((int) ((rest & 0x7F) | 0x80));
            rest >>>= 7;
        }
        out.write((int) rest);
    }

    /** MurmurHash3 x86 32-bit, seed 0 (what Python's {@code mmh3.hash} computes). */
    @SuppressWarnings("fallthrough")
    static int murmur3(byte[] data) {
        final int c1 = 0xcc9e2d51;
        final int c2 = 0x1b873593;
        int h = 0;
        int blocks = data.length / 4;
        ByteBuffer buffer = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < blocks; i++) {
            int k = buffer.getInt(i * 4);
            k *= c1;
            k = Integer.rotateLeft(k, 15);
            k *= c2;
            h ^= k;
            h = Integer.rotateLeft(h, 13);
            h = h * 5 + 0xe6546b64;
        }
        int k = 0;
        int tail = blocks * 4;
        switch (data.length & 3) {
            case 3:
                k ^= (data[tail + 2] & 0xff) << 16;
                // fall through
            case 2:
                k ^= (data[tail + 1] & 0xff) << 8;
                // fall through
            case 1:
                k ^= data[tail] & 0xff;
                k *= c1;
                k = Integer.rotateLeft(k, 15);
                k *= c2;
                h ^= k;
                break;
            default:
                break;
        }
        h ^= data.length;
        h ^= h >>> 16;
        h *= 0x85ebca6b;
        h ^= h >>> 13;
        h *= 0xc2b2ae35;
        h ^= h >>> 16;
        return h;
    }
}
