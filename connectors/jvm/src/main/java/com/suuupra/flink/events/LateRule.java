package com.suuupra.flink.events;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeHint;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.streaming.api.operators.ProcessOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryRowData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.util.Collector;

/**
 * The late rule, on the rows {@link EventDecoder} produced: a readable event more than {@code lateBoundMs} older than
 * the newest event already seen in its Kafka partition is marked late ({@code is_late}); {@code high_ms} is that
 * newest time. Chained to the source, this operator sees each partition's records in offset order, and the newest time
 * per partition is checkpointed (union state, so a restore at another parallelism still knows every partition's), so
 * the rule decides identically on every run. With a watermark, an event the rule lets through but the watermark has
 * already passed (only possible once its partition was idle, see {@link LateRuleWatermarks}) is late as well, with
 * that watermark in {@code watermark_ms}: no window could count it any more. Sets the columns in the decoder's row, in
 * place.
 */
final class LateRule extends ProcessFunction<RowData, RowData> implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;

    private final EventsConfig config;

    private transient Map<String, Map<Integer, long[]>> newest;
    private transient ListState<Tuple3<String, Integer, Long>> checkpointed;
    private transient ListState<Long> checkpointedWatermark;
    /** The last watermark this subtask received (kept by {@link Operator}). */
    private transient long watermark;
    /**
     * The watermark the job had reached at the checkpoint it was restored from: the operators downstream have closed
     * and dropped every window up to it, while their own watermark starts again from nothing.
     */
    private transient long restoredWatermark;
    private transient StringData lastTopic;
    private transient int lastPartition;
    private transient long[] lastNewest;

    LateRule(EventsConfig config) {
        this.config = config;
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        checkpointed = context.getOperatorStateStore().getUnionListState(new ListStateDescriptor<>(
                "newest-event-time-per-partition", TypeInformation.of(new TypeHint<Tuple3<String, Integer, Long>>() {})));
        checkpointedWatermark = context.getOperatorStateStore().getUnionListState(new ListStateDescriptor<>(
                "watermark-at-checkpoint", TypeInformation.of(Long.class)));
        watermark = Long.MIN_VALUE;
        // Downstream, the watermark was the minimum over the subtasks (none is ever idle as a whole while reading).
        restoredWatermark = Long.MIN_VALUE;
        List<Long> restored = new ArrayList<>();
        checkpointedWatermark.get().forEach(restored::add);
        if (!restored.isEmpty()) {
            restoredWatermark = Collections.min(restored);
        }
        newest = new HashMap<>();
        for (Tuple3<String, Integer, Long> entry : checkpointed.get()) {
            long[] high = newest.computeIfAbsent(entry.f0, topic -> new HashMap<>())
                    .computeIfAbsent(entry.f1, partition -> new long[] {Long.MIN_VALUE});
            high[0] = Math.max(high[0], entry.f2);
        }
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        checkpointedWatermark.clear();
        checkpointedWatermark.add(Math.max(watermark, restoredWatermark));
        checkpointed.clear();
        for (Map.Entry<String, Map<Integer, long[]>> topic : newest.entrySet()) {
            for (Map.Entry<Integer, long[]> partition : topic.getValue().entrySet()) {
                checkpointed.add(Tuple3.of(topic.getKey(), partition.getKey(), partition.getValue()[0]));
            }
        }
    }

    @Override
    public void processElement(RowData row, Context context, Collector<RowData> out) {
        if (config.lateBoundMs >= 0 && row.getBoolean(EventsConfig.OK)) {
            BinaryRowData binary = (BinaryRowData) row;
            long eventTime = row.getLong(config.eventTimeColumn());
            long[] high = newestOf(row.getString(EventsConfig.TOPIC), row.getInt(EventsConfig.PARTITION));
            high[0] = Math.max(high[0], eventTime);
            binary.setLong(config.highPosition(), high[0]);
            boolean late = eventTime < high[0] - config.lateBoundMs;
            if (!late && config.watermark) {
                // Only after a partition was idle can the watermark have passed an event the rule lets through. The
                // operators downstream have seen no later watermark than this one when the event reaches them (nor,
                // after a restore, closed a window past the restored one).
                long passed = Math.max(watermark, restoredWatermark);
                if (eventTime <= passed) {
                    late = true;
                    binary.setLong(config.watermarkPosition(), passed);
                }
            }
            binary.setBoolean(config.latePosition(), late);
        }
        out.collect(row);
    }

    /** Runs the function and tells it each watermark, which a process function does not see otherwise. */
    static final class Operator extends ProcessOperator<RowData, RowData> {
        private static final long serialVersionUID = 1L;

        Operator(LateRule rule) {
            super(rule);
        }

        @Override
        public void processWatermark(Watermark mark) throws Exception {
            ((LateRule) userFunction).watermark = mark.getTimestamp();
            super.processWatermark(mark);
        }
    }

    /** Compares the row's topic bytes with the last record's: a Java string only when the partition changes. */
    private long[] newestOf(StringData topic, int partition) {
        if (lastNewest == null || partition != lastPartition || !topic.equals(lastTopic)) {
            String name = topic.toString();
            lastNewest = newest.computeIfAbsent(name, key -> new HashMap<>())
                    .computeIfAbsent(partition, number -> new long[] {Long.MIN_VALUE});
            // A copy: the row, and the bytes the topic points into, are reused for the next record.
            lastTopic = BinaryStringData.fromString(name);
            lastPartition = partition;
        }
        return lastNewest;
    }
}
