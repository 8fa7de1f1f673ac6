package com.suuupra.flink.avro;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;

import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;

/**
 * Reads Confluent-framed Avro records (magic byte 0, 4-byte schema id, Avro body) into GenericRecords of their
 * writer's schema, fetched from a Confluent-compatible registry once per id (an id the registry does not have is asked
 * about again after {@link #UNKNOWN_ID_RECHECK_NANOS}; one whose schema is no Avro record never again: a registered
 * id's schema never changes). One instance per thread.
 *
 * <p>The record of a read is valid until the next read (the objects are reused). A record that cannot be read is not
 * an exception: {@link #read} answers false and {@link #errorCode} /
 * {@link #error} say why, for a dead-letter sink. An unreachable registry does throw (the record may be fine): the
 * job fails and its restart strategy retries from the last checkpoint.
 */
public final class ConfluentAvroReader {
    public static final String MALFORMED = "malformed_record";
    public static final String UNKNOWN_SCHEMA = "unknown_schema";
    public static final String INCOMPATIBLE_SCHEMA = "incompatible_schema";
    /** Avro allocates a string or array of the length a record claims before reading it: bound that. */
    private static final long MAX_RECORD_BYTES = 16L * 1024 * 1024;
    /**
     * A schema id the registry does not have is not asked about again for this long: a producer writing ids that do
     * not exist would otherwise cost a registry round trip per record (milliseconds each).
     */
    static final long UNKNOWN_ID_RECHECK_NANOS = 5_000_000_000L;
    /** Random ids must not grow a memory of refused ones without end: each (may change, for good) keeps this many. */
    static final int MAX_REFUSED_IDS = 10_000;

    static {
        String limit = Long.toString(MAX_RECORD_BYTES);
        System.setProperty("org.apache.avro.limits.string.maxLength", limit);
        System.setProperty("org.apache.avro.limits.bytes.maxLength", limit);
        System.setProperty("org.apache.avro.limits.collectionItems.maxLength", limit);
    }

    private final RegistryLookup registry;
    private final long unknownIdRecheckNanos;
    private final Map<Integer, WriterSchema> writers = new HashMap<>();
    /** Ids refused with an answer that may change (the registry did not have it), and when. */
    private final Map<Integer, RefusedId> refusedForNow = new HashMap<>();
    /** Ids whose schema is no Avro record: refused for good, and not forgotten when made-up ids fill the other. */
    private final Map<Integer, RefusedId> refusedForGood = new HashMap<>();
    private BinaryDecoder reusable;
    private GenericRecord record;
    private WriterSchema writer;
    private String errorCode;
    private String error;

    public ConfluentAvroReader(String registryUrl) {
        this(registryUrl, UNKNOWN_ID_RECHECK_NANOS);
    }

    /** With another recheck interval for ids the registry does not have (a test's, which cannot wait 5 s). */
    public ConfluentAvroReader(String registryUrl, long unknownIdRecheckNanos) {
        this.registry = new RegistryLookup(registryUrl);
        this.unknownIdRecheckNanos = unknownIdRecheckNanos;
    }

    /** Reads one record; true when {@link #record} and {@link #writer} hold it, false when {@link #error} says why. */
    public boolean read(byte[] payload) {
        record = null;
        writer = null;
        if (payload == null) {
            return fail(MALFORMED, "record has no value (a tombstone), expected an Avro event");
        }
        if (payload.length < 5) {
            return fail(MALFORMED,
                    "record is " + payload.length + " bytes, shorter than the 5-byte Confluent Avro header");
        }
        if (payload[0] != 0) {
            return fail(MALFORMED,
                    String.format("first byte is 0x%02x, not the Confluent Avro magic byte 0x00", payload[0] & 0xFF));
        }
        int schemaId = ((payload[1] & 0xFF) << 24) | ((payload[2] & 0xFF) << 16) | ((payload[3] & 0xFF) << 8)
                | (payload[4] & 0xFF);
        WriterSchema found = writers.get(schemaId);
        if (found == null) {
            RefusedId earlier = refusedForGood.get(schemaId);
            if (earlier == null) {
                earlier = refusedForNow.get(schemaId);
                if (earlier != null && System.nanoTime() - earlier.nanoTime >= unknownIdRecheckNanos) {
                    earlier = null;
                }
            }
            if (earlier != null) {
                return fail(earlier.code, earlier.reason);
            }
            try {
                found = registry.fetch(schemaId);
            } catch (RegistryLookup.UnknownSchemaException unknown) {
                return refuse(unknown.mayChange ? refusedForNow : refusedForGood, schemaId, UNKNOWN_SCHEMA,
                        unknown.getMessage());
            } catch (RegistryLookup.IncompatibleSchemaException incompatible) {
                return refuse(refusedForGood, schemaId, INCOMPATIBLE_SCHEMA, incompatible.getMessage());
            }
            refusedForNow.remove(schemaId);
            writers.put(schemaId, found);
        }
        try {
            BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(payload, 5, payload.length - 5, reusable);
            // The writer's previous record is read into (its Utf8s, arrays and maps reused): a record is valid until
            // the next read, which is all a caller may rely on.
            GenericRecord decoded = found.reader.read(found.reusableRecord, decoder);
            found.reusableRecord = decoded;
            if (!decoder.isEnd()) {
                reusable = null;
                found.reusableRecord = null;
                return fail(MALFORMED, "record has bytes after the end of its Avro body (schema id " + schemaId
                        + ", " + payload.length + " bytes)");
            }
            reusable = decoder;
            record = decoded;
            writer = found;
            return true;
        } catch (IOException | RuntimeException | OutOfMemoryError failure) {
            // A failed read leaves the decoder's buffer and the record in an unknown state: never reuse them.
            reusable = null;
            found.reusableRecord = null;
            return fail(MALFORMED, "record does not decode with schema id " + schemaId + " (" + found.fullName()
                    + "): " + failure.getClass().getSimpleName() + ": " + failure.getMessage());
        }
    }

    private boolean refuse(Map<Integer, RefusedId> memory, int schemaId, String code, String reason) {
        if (memory.size() >= MAX_REFUSED_IDS) {
            memory.clear();
        }
        memory.put(schemaId, new RefusedId(code, reason, System.nanoTime()));
        return fail(code, reason);
    }

    private record RefusedId(String code, String reason, long nanoTime) {}

    private boolean fail(String code, String reason) {
        errorCode = code;
        error = reason;
        return false;
    }

    public GenericRecord record() {
        return record;
    }

    public WriterSchema writer() {
        return writer;
    }

    public String errorCode() {
        return errorCode;
    }

    public String error() {
        return error;
    }
}
