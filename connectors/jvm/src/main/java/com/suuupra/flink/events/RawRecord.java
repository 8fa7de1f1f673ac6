package com.suuupra.flink.events;

/**
 * A Kafka record as it left the broker: where it was, its key and value bytes, and its {@code event_type} header
 * (null without one). Handed on within one task only.
 */
public final class RawRecord {
    public String topic;
    public int partition;
    public long offset;
    public byte[] key;
    public byte[] value;
    public byte[] eventTypeHeader;

    public RawRecord() {}

    RawRecord(String topic, int partition, long offset, byte[] key, byte[] value, byte[] eventTypeHeader) {
        this.topic = topic;
        this.partition = partition;
        this.offset = offset;
        this.key = key;
        this.value = value;
        this.eventTypeHeader = eventTypeHeader;
    }
}
