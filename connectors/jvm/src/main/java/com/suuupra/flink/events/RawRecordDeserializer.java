package com.suuupra.flink.events;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.header.Header;
import org.apache.flink.util.Collector;

/** Passes every record on as it is: decoding happens in {@link DecodeAndSequence}, where a failure has a place to go. */
final class RawRecordDeserializer implements KafkaRecordDeserializationSchema<RawRecord> {
    private static final long serialVersionUID = 1L;
    /** The header producers put the event type in (suuupra/events.py EVENT_TYPE_HEADER). */
    static final String EVENT_TYPE_HEADER = "event_type";

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<RawRecord> out) {
        Header eventType = record.headers().lastHeader(EVENT_TYPE_HEADER);
        out.collect(new RawRecord(record.topic(), record.partition(), record.offset(), record.key(), record.value(),
                eventType == null ? null : eventType.value()));
    }

    @Override
    public TypeInformation<RawRecord> getProducedType() {
        return TypeInformation.of(RawRecord.class);
    }
}
