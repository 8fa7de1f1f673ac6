package com.suuupra.flink.sessions;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.InternalTimer;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.operators.Triggerable;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;

/**
 * Gap sessions per user, kept current as events come, with the changes of a short interval written together.
 *
 * <p>The input rows are {@code (user_id, event_time, high_ms, content_id)}, keyed by user, each user's events in
 * their Kafka partition's order. A session is a maximal run of events whose neighbours are less than {@code gapMs}
 * apart, so an out-of-order event extends a session or merges two. Every change gives the session a version one
 * higher; a session absorbed by a merge gets {@code deleted = 1}. A ReplacingMergeTree(version) keyed by (user,
 * session_start) keeps the newest row.
 *
 * <p>Only a session's newest row matters downstream, so the operator keeps the newest row per (user, session) of the
 * current interval in memory and emits them every {@code flushMs}, at {@code bundleRows} rows, before every
 * checkpoint barrier (so no change is ever only in memory when a checkpoint completes) and at the end of a bounded
 * input. Emitting per event cost a row through the whole SQL sink path for every click.
 *
 * <p>No watermark decides anything: an event the partition rule accepts is never older than
 * {@code high_ms - boundMs}, so a session that ended more than {@code gapMs} before that can never change again and
 * leaves the state. The result depends only on each user's events in partition order.
 *
 * <p>The state stays small because it is snapshotted whole on every checkpoint: a session's watched contents are
 * their ids' 128 bits (a UUID's own bits, so the count is exact; any other id a 128-bit hash of its bytes, as
 * ClickHouse's uniqExact counts strings), and a user's state leaves {@code stateTtlMs} after its last change through
 * one processing-time timer per user rather than Flink's state TTL, whose incremental cleanup ran on every access.
 */
final class SessionsOperator extends AbstractStreamOperator<RowData>
        implements OneInputStreamOperator<RowData, RowData>, BoundedOneInput, ProcessingTimeCallback,
        Triggerable<String, VoidNamespace> {
    private static final long serialVersionUID = 1L;

    private final long gapMs;
    private final long boundMs;
    private final long flushMs;
    private final int bundleRows;
    private final long stateTtlMs;

    private transient ValueState<OpenSessions> sessions;
    private transient InternalTimerService<VoidNamespace> expiry;
    /** The newest row of each (user, session start) changed since the last flush. */
    private transient Map<Pending, GenericRowData> pending;
    private transient boolean timerSet;

    SessionsOperator(long gapMs, long boundMs, long flushMs, int bundleRows, long stateTtlMs) {
        this.gapMs = gapMs;
        this.boundMs = boundMs;
        this.flushMs = flushMs;
        this.bundleRows = bundleRows;
        this.stateTtlMs = stateTtlMs;
    }

    /**
     * A user's open sessions, parallel arrays sorted by start; {@code watched} holds each one's content ids as
     * (high, low) pairs of longs, sorted. {@code changedAt}: the processing time of the last change (for expiry).
     */
    public static final class OpenSessions {
        public long version;
        public long changedAt;
        public long[] starts = new long[0];
        public long[] ends = new long[0];
        public int[] events = new int[0];
        public long[][] watched = new long[0][];
    }

    private record Pending(String user, long start) {}

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        // Named anew when its layout changed (content ids as strings before): an older checkpoint's sessions are not
        // read as these.
        ValueStateDescriptor<OpenSessions> descriptor =
                new ValueStateDescriptor<>("open-sessions-v2", TypeInformation.of(OpenSessions.class));
        sessions = context.getKeyedStateStore().getState(descriptor);
        pending = new LinkedHashMap<>();
    }

    @Override
    public void open() throws Exception {
        super.open();
        expiry = getInternalTimerService("open-sessions-expiry", VoidNamespaceSerializer.INSTANCE, this);
    }

    @Override
    public void processElement(StreamRecord<RowData> element) throws Exception {
        RowData input = element.getValue();
        String user = input.getString(0).toString();
        long time = input.getLong(1);
        long high = input.isNullAt(2) ? time : input.getLong(2);
        long[] content = input.isNullAt(3) ? null : ContentIds.of((BinaryStringData) input.getString(3));
        long now = getProcessingTimeService().getCurrentProcessingTime();
        OpenSessions state = sessions.value();
        if (state == null) {
            state = new OpenSessions();
            if (stateTtlMs > 0) {
                expiry.registerProcessingTimeTimer(VoidNamespace.INSTANCE, now + stateTtlMs);
            }
        }
        state.changedAt = now;

        List<Integer> touched = new ArrayList<>(2);
        List<Integer> kept = new ArrayList<>(state.starts.length);
        long settled = high - boundMs;
        for (int i = 0; i < state.starts.length; i++) {
            if (time - state.ends[i] < gapMs && state.starts[i] - time < gapMs) {
                touched.add(i);
            } else if (state.ends[i] + gapMs > settled) {
                kept.add(i);
            }
        }
        long start = time;
        long end = time;
        int events = 1;
        long[] merged = content == null ? ContentIds.NONE : content;
        for (int i : touched) {
            start = Math.min(start, state.starts[i]);
            end = Math.max(end, state.ends[i]);
            events += state.events[i];
            merged = ContentIds.union(merged, state.watched[i]);
        }
        for (int i : touched) {
            if (state.starts[i] != start) {
                state.version++;
                changed(user, state.starts[i], state.ends[i], state.events[i], ContentIds.count(state.watched[i]),
                        state.version, 1);
            }
        }
        state.version++;
        changed(user, start, end, events, ContentIds.count(merged), state.version, 0);

        int size = kept.size() + 1;
        long[] starts = new long[size];
        long[] ends = new long[size];
        int[] counts = new int[size];
        long[][] contents = new long[size][];
        int at = 0;
        boolean placed = false;
        for (int i : kept) {
            if (!placed && state.starts[i] > start) {
                starts[at] = start;
                ends[at] = end;
                counts[at] = events;
                contents[at++] = merged;
                placed = true;
            }
            starts[at] = state.starts[i];
            ends[at] = state.ends[i];
            counts[at] = state.events[i];
            contents[at++] = state.watched[i];
        }
        if (!placed) {
            starts[at] = start;
            ends[at] = end;
            counts[at] = events;
            contents[at] = merged;
        }
        state.starts = starts;
        state.ends = ends;
        state.events = counts;
        state.watched = contents;
        sessions.update(state);

        if (pending.size() >= bundleRows) {
            flush();
        } else if (!timerSet) {
            timerSet = true;
            getProcessingTimeService().registerTimer(now + flushMs, this);
        }
    }

    private void changed(String user, long start, long end, int events, int watched, long version, int deleted) {
        pending.put(new Pending(user, start), GenericRowData.of(StringData.fromString(user), start, end,
                (int) ((end - start) / 1000), events, watched, version, deleted));
    }

    private void flush() {
        for (GenericRowData row : pending.values()) {
            output.collect(new StreamRecord<>(row));
        }
        pending.clear();
    }

    @Override
    public void onProcessingTime(long time) {
        timerSet = false;
        flush();
    }

    /** A user's expiry timer: the state leaves when it has not changed for stateTtlMs, or the timer moves on. */
    @Override
    public void onProcessingTime(InternalTimer<String, VoidNamespace> timer) throws Exception {
        OpenSessions state = sessions.value();
        if (state == null) {
            return;
        }
        long expiresAt = state.changedAt + stateTtlMs;
        if (expiresAt <= timer.getTimestamp()) {
            sessions.clear();
        } else {
            expiry.registerProcessingTimeTimer(VoidNamespace.INSTANCE, expiresAt);
        }
    }

    @Override
    public void onEventTime(InternalTimer<String, VoidNamespace> timer) {
        // Only processing-time timers are registered.
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        flush();
    }

    @Override
    public void endInput() {
        flush();
    }

    @Override
    public void finish() throws Exception {
        flush();
        super.finish();
    }
}
