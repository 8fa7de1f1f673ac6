package com.suuupra.flink.events;

/**
 * The Kafka record {@link EventDecoder} is decoding: where it was, its key and value bytes, and its {@code event_type}
 * header (null without one). One instance per decoder, refilled for every record.
 */
public final class RawRecord {
    public String topic;
    public int partition;
    public long offset;
    public byte[] key;
    public byte[] value;
    public byte[] eventTypeHeader;

    public RawRecord() {}
}
