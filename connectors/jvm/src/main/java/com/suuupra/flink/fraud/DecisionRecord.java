package com.suuupra.flink.fraud;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import java.util.UUID;

/**
 * A {@code payment.fraud_decided} event (schemas/payment/fraud_decided.avsc) in the Confluent wire format: magic
 * byte, the schema's registry id, then Avro binary in the schema's field order. Written by hand for one fixed record:
 * the schema file stays the single source of truth, and {@code tests/jobs/test_fraud_scoring.py} decodes what this
 * writes with the registry's schema.
 */
final class DecisionRecord {
    static final List<String> DECISIONS = List.of("APPROVE", "REVIEW", "REJECT"); // the enum's symbols, in order

    private DecisionRecord() {}

    /** Python's {@code uuid.uuid5(namespace, name)}. */
    static String uuid5(UUID namespace, String name) {
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            sha1.update(ByteBuffer.allocate(16).putLong(namespace.getMostSignificantBits())
                    .putLong(namespace.getLeastSignificantBits()).array());
            byte[] hash = sha1.digest(name.getBytes(StandardCharsets.UTF_8));
            hash[6] = (byte) ((hash[6] & 0x0f) | 0x50);
            hash[8] = (byte) ((hash[8] & 0x3f) | 0x80);
            ByteBuffer buffer = ByteBuffer.wrap(hash, 0, 16);
            return new UUID(buffer.getLong(), buffer.getLong()).toString();
        } catch (NoSuchAlgorithmException error) {
            throw new IllegalStateException("SHA-1 is missing from this JVM", error);
        }
    }

    static byte[] encode(int schemaId, String eventId, long eventTime, String producer, String correlationId,
            String userId, String paymentId, String orderId, String decision, double score, String modelVersion,
            List<String> reasons) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(256);
        out.write(0);
        out.writeBytes(ByteBuffer.allocate(4).putInt(schemaId).array());
        string(out, eventId);
        string(out, "payment.fraud_decided");
        varlong(out, eventTime);
        string(out, producer);
        string(out, correlationId);
        string(out, userId);
        string(out, paymentId);
        string(out, orderId);
        varlong(out, DECISIONS.indexOf(decision));
        long bits = Double.doubleToLongBits(score);
        for (int i = 0; i < 8; i++) {
            out.write((int) (bits >>> (8 * i)) & 0xff);
        }
        string(out, modelVersion);
        if (!reasons.isEmpty()) {
            varlong(out, reasons.size());
            for (String reason : reasons) {
                string(out, reason);
            }
        }
        varlong(out, 0);
        return out.toByteArray();
    }

    private static void string(ByteArrayOutputStream out, String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        varlong(out, bytes.length);
        out.writeBytes(bytes);
    }

    /** Avro's long: zig-zag, then a base-128 varint. */
    private static void varlong(ByteArrayOutputStream out, long value) {
        long zigzag = (value << 1) ^ (value >> 63);
        while ((zigzag & ~0x7FL) != 0) {
            out.write((int) ((zigzag & 0x7F) | 0x80));
            zigzag >>>= 7;
        }
        out.write((int) zigzag);
    }
}
