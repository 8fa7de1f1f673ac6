package com.suuupra.flink.events;

import org.apache.flink.kafka.shaded.org.apache.kafka.common.header.Headers;

/**
 * The Kafka record {@link EventDecoder} is decoding: where it was, its key and value bytes, and its headers. One
 * instance per decoder, refilled for every record.
 */
public final class RawRecord {
    public String topic;
    public int partition;
    public long offset;
    public byte[] key;
    public byte[] value;
    public Headers headers;

    public RawRecord() {}
}
