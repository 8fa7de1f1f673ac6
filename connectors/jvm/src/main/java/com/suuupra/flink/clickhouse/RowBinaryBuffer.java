package com.suuupra.flink.clickhouse;

import java.util.Arrays;

/** A growable byte buffer with the little-endian and LEB128 writes of ClickHouse's RowBinary format. */
final class RowBinaryBuffer {
    private byte[] bytes;
    private int size;

    RowBinaryBuffer(int capacity) {
        bytes = new byte[Math.max(capacity, 64)];
    }

    int size() {
        return size;
    }

    void reset() {
        size = 0;
    }

    /** The written bytes, copied. */
    byte[] toByteArray() {
        return Arrays.copyOf(bytes, size);
    }

    /** The backing array (valid up to {@link #size()}); not to be written while a reader of it is still reading. */
    byte[] array() {
        return bytes;
    }

    /** How many bytes the buffer holds before it grows. */
    int capacity() {
        return bytes.length;
    }

    private void ensure(int more) {
        if (size + more > bytes.length) {
            bytes = Arrays.copyOf(bytes, Math.max(bytes.length * 2, size + more));
        }
    }

    void putByte(int value) {
        ensure(1);
        bytes[size++] = (byte) value;
    }

    void putShortLE(int value) {
        ensure(2);
        bytes[size++] = (byte) value;
        bytes[size++] = (byte) (value >>> 8);
    }

    void putIntLE(int value) {
        ensure(4);
        bytes[size++] = (byte) value;
        bytes[size++] = (byte) (value >>> 8);
        bytes[size++] = (byte) (value >>> 16);
        bytes[size++] = (byte) (value >>> 24);
    }

    void putLongLE(long value) {
        ensure(8);
        for (int shift = 0; shift < 64; shift += 8) {
            bytes[size++] = (byte) (value >>> shift);
        }
    }

    /** An unsigned LEB128 length, as RowBinary prefixes strings with. */
    void putVarUInt(long value) {
        ensure(10);
        long rest = value;
        while ((rest & ~0x7FL) != 0) {
            bytes[size++] = (byte) ((rest & 0x7F) | 0x80);
            rest >>>= 7;
        }
        bytes[size++] = (byte) rest;
    }

    void putBytes(byte[] source, int offset, int length) {
        ensure(length);
        System.arraycopy(source, offset, bytes, size, length);
        size += length;
    }

    /** Makes room for {@code length} bytes the caller writes into {@link #array()}; returns where they start. */
    int advance(int length) {
        ensure(length);
        int start = size;
        size += length;
        return start;
    }

    void putZeros(int count) {
        ensure(count);
        Arrays.fill(bytes, size, size + count, (byte) 0);
        size += count;
    }

    /** Appends another buffer's bytes. */
    void putAll(RowBinaryBuffer other) {
        putBytes(other.bytes, 0, other.size);
    }
}
