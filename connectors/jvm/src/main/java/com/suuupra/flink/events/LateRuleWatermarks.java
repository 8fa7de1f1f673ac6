package com.suuupra.flink.events;

import org.apache.flink.api.common.eventtime.TimestampAssigner;
import org.apache.flink.api.common.eventtime.TimestampAssignerSupplier;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.table.data.RowData;

/**
 * The watermark of one Kafka partition, as the late rule sees it: {@code lateBoundMs} (and a millisecond) behind the
 * newest readable event of the partition. The Kafka source keeps one per partition and combines them (the minimum over
 * the partitions of the reader that are not idle), so an event the late rule lets through is never behind the
 * watermark: it is at most the bound older than its partition's newest event, and the watermark is more than the bound
 * behind it. Records that failed to decode, and late ones, never move it.
 *
 * <p>A partition is idle, and stops holding the watermark back, once the reader has emitted {@code idleAfterRecords}
 * records of its other partitions since this one's last record (or since it was assigned, for one that has none):
 * it has been read to its end while the others go on. Counted in records, not time, so neither a slow machine nor
 * back-pressure nor an outage of the whole broker makes a partition with records still to read idle (the reader's
 * fetches serve every partition long before that many records), and a quiet partition keeps at most that many
 * records' windows open. The reader itself is never idle as a whole while it reads: the partition it emitted last is
 * always active, so the operators downstream never see its watermark fall behind theirs. A bounded read counts no
 * partition idle (a partition read to its end is released instead). Its next record makes an idle partition active
 * again; {@link LateRule} records an event that arrives behind the watermark as late.
 */
final class LateRuleWatermarks implements WatermarkGenerator<RowData> {
    private final ReaderProgress reader;
    private final int eventTimeColumn;
    private final long lateBoundMs;
    private final long idleAfterRecords;
    private long newest = Long.MIN_VALUE;
    private long readerRecordsAtLast;
    private boolean idle;
    private boolean resumed;

    LateRuleWatermarks(EventsConfig config, ReaderProgress reader) {
        this.reader = reader;
        this.eventTimeColumn = config.eventTimeColumn();
        this.lateBoundMs = config.lateBoundMs;
        // A bounded read needs no idleness: a partition read to its end is released, and an empty one is at its end
        // at once. (Idle partitions and released ones together could leave a subtask idle as a whole.)
        this.idleAfterRecords = config.bounded ? -1 : config.partitionIdleAfterRecords;
        this.readerRecordsAtLast = reader.records;
    }

    @Override
    public void onEvent(RowData row, long timestamp, WatermarkOutput output) {
        readerRecordsAtLast = ++reader.records;
        if (idle) {
            idle = false;
            resumed = true;
        }
        if (row.getBoolean(EventsConfig.OK)) {
            newest = Math.max(newest, row.getLong(eventTimeColumn));
        }
    }

    @Override
    public void onPeriodicEmit(WatermarkOutput output) {
        if (idleAfterRecords >= 0 && reader.records - readerRecordsAtLast >= idleAfterRecords) {
            if (!idle) {
                idle = true;
                output.markIdle();
            }
            return;
        }
        if (newest != Long.MIN_VALUE) {
            output.emitWatermark(new Watermark(newest - lateBoundMs - 1));
        } else if (resumed) {
            output.markActive();
        }
        resumed = false;
    }

    /** How many records one source reader (a subtask) has emitted, from all its partitions. */
    static final class ReaderProgress {
        long records;
    }

    /**
     * The source's strategy: each row's event time as its timestamp (the Kafka timestamp for a record that could not
     * be read: it has no event time, and its row never reaches an operator that uses time) and a {@link
     * LateRuleWatermarks} per partition. Each subtask deserializes its own instance, so its partitions share one
     * {@link ReaderProgress}.
     */
    static final class Strategy implements WatermarkStrategy<RowData> {
        private static final long serialVersionUID = 1L;
        private final EventsConfig config;
        private transient ReaderProgress reader;

        Strategy(EventsConfig config) {
            this.config = config;
        }

        @Override
        public WatermarkGenerator<RowData> createWatermarkGenerator(WatermarkGeneratorSupplier.Context context) {
            if (reader == null) {
                reader = new ReaderProgress();
            }
            return new LateRuleWatermarks(config, reader);
        }

        @Override
        public TimestampAssigner<RowData> createTimestampAssigner(TimestampAssignerSupplier.Context context) {
            int eventTime = config.eventTimeColumn();
            return (row, kafkaTimestamp) -> row.getBoolean(EventsConfig.OK) ? row.getLong(eventTime) : kafkaTimestamp;
        }
    }
}
