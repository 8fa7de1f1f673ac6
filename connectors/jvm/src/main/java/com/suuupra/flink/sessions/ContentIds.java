package com.suuupra.flink.sessions;

import java.util.Arrays;

import org.apache.flink.table.data.binary.BinaryStringData;

/**
 * Sets of content ids as sorted arrays of 128-bit values, each a (high, low) pair of longs: a session's watched
 * contents, snapshotted on every checkpoint, cost two longs per id instead of a 36-character string.
 *
 * <p>A canonical UUID (8-4-4-4-12 hex digits, every event's content_id) is its own 128 bits, so two ids are equal
 * exactly when their values are. Any other text is a 128-bit hash of its UTF-8 bytes (two 64-bit multiplicative hashes
 * of different seeds and multipliers), like ClickHouse's uniqExact on strings: a collision is negligibly unlikely.
 */
final class ContentIds {
    static final long[] NONE = new long[0];

    private ContentIds() {}

    /** The id as a one-element set. */
    static long[] of(BinaryStringData text) {
        byte[] bytes = text.toBytes();
        long[] uuid = parseUuid(bytes);
        return uuid != null ? uuid
                : new long[] {hash(bytes, 0xCBF29CE484222325L, 0x100000001B3L), hash(bytes, 0x84222325CBF29CE4L,
                        0x9E3779B97F4A7C15L)};
    }

    static int count(long[] set) {
        return set.length / 2;
    }

    /** The union of two sets (both sorted by (high, low), unsigned), sorted. */
    static long[] union(long[] a, long[] b) {
        long[] out = new long[a.length + b.length];
        int i = 0;
        int j = 0;
        int n = 0;
        while (i < a.length && j < b.length) {
            int order = compare(a[i], a[i + 1], b[j], b[j + 1]);
            if (order <= 0) {
                out[n++] = a[i];
                out[n++] = a[i + 1];
                i += 2;
                if (order == 0) {
                    j += 2;
                }
            } else {
                out[n++] = b[j];
                out[n++] = b[j + 1];
                j += 2;
            }
        }
        while (i < a.length) {
            out[n++] = a[i++];
        }
        while (j < b.length) {
            out[n++] = b[j++];
        }
        return n == out.length ? out : Arrays.copyOf(out, n);
    }

    private static int compare(long highA, long lowA, long highB, long lowB) {
        int high = Long.compareUnsigned(highA, highB);
        return high != 0 ? high : Long.compareUnsigned(lowA, lowB);
    }

    /** The 128 bits of a canonical UUID's text, or null when the text is not one. */
    static long[] parseUuid(byte[] text) {
        if (text.length != 36) {
            return null;
        }
        long high = 0;
        long low = 0;
        int digits = 0;
        for (int i = 0; i < 36; i++) {
            byte c = text[i];
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (c != '-') {
                    return null;
                }
                continue;
            }
            int digit = Character.digit(c, 16);
            if (c < 0 || digit < 0) {
                return null;
            }
            if (digits < 16) {
                high = (high << 4) | digit;
            } else {
                low = (low << 4) | digit;
            }
            digits++;
        }
        return new long[] {high, low};
    }

    /** A 64-bit hash of the bytes: FNV-1a's steps with the given seed and odd multiplier, then SplitMix64's mix. */
    private static long hash(byte[] bytes, long seed, long multiplier) {
        long h = seed;
        for (byte b : bytes) {
            h ^= b & 0xFF;
            h *= multiplier;
        }
        h ^= bytes.length;
        h = (h ^ (h >>> 30)) * 0xBF58476D1CE4E5B9L;
        h = (h ^ (h >>> 27)) * 0x94D049BB133111EBL;
        return h ^ (h >>> 31);
    }
}
