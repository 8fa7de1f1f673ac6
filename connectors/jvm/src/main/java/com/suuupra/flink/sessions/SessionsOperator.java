package com.suuupra.flink.sessions;

import java.util.LinkedHashMap;
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
    /** The newest change of each (user, session start) since the last flush; made a row only when flushed. */
    private transient Map<Pending, Change> pending;
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

    /**
     * A session changed in the current interval. Its own equals and hashCode: a record's generated ones go through
     * method handles, which a profile showed not inlined here, once per click (1.8 % of the analytics job's samples).
     */
    private record Pending(String user, long start) {
        @Override
        public boolean equals(Object other) {
            return other instanceof Pending pending && start == pending.start && user.equals(pending.user);
        }

        @Override
        public int hashCode() {
            return 31 * user.hashCode() + Long.hashCode(start);
        }
    }

    private record Change(long end, int events, int watched, long version, int deleted) {}

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
        // The key selector made the user id a String already (UserSessions): not decoded twice.
        String user = (String) getCurrentKey();
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

        int open = state.starts.length;
        // Sessions are sorted and more than a gap apart, so the ones the event touches are next to each other.
        int firstTouched = -1;
        int touched = 0;
        int settledCount = 0;
        long settled = high - boundMs;
        for (int i = 0; i < open; i++) {
            if (time - state.ends[i] < gapMs && state.starts[i] - time < gapMs) {
                if (touched++ == 0) {
                    firstTouched = i;
                }
            } else if (state.ends[i] + gapMs <= settled) {
                settledCount++;
            }
        }
        long start = time;
        long end = time;
        int events = 1;
        long[] merged = content == null ? ContentIds.NONE : content;
        for (int i = firstTouched; i < firstTouched + touched; i++) {
            start = Math.min(start, state.starts[i]);
            end = Math.max(end, state.ends[i]);
            events += state.events[i];
            merged = ContentIds.union(merged, state.watched[i]);
        }
        for (int i = firstTouched; i < firstTouched + touched; i++) {
            if (state.starts[i] != start) {
                state.version++;
                changed(user, state.starts[i], state.ends[i], state.events[i], ContentIds.count(state.watched[i]),
                        state.version, 1);
            }
        }
        state.version++;
        changed(user, start, end, events, ContentIds.count(merged), state.version, 0);

        if (touched == 1 && settledCount == 0) {
            // The common case: the event extends one session and none leaves; its start stays between its
            // neighbours', so it is updated where it is.
            state.starts[firstTouched] = start;
            state.ends[firstTouched] = end;
            state.events[firstTouched] = events;
            state.watched[firstTouched] = merged;
        } else {
            rebuild(state, firstTouched, touched, settled, start, end, events, merged);
        }
        sessions.update(state);

        if (pending.size() >= bundleRows) {
            flush();
        } else if (!timerSet) {
            timerSet = true;
            getProcessingTimeService().registerTimer(now + flushMs, this);
        }
    }

    /** The sessions without the touched and the settled ones, and the merged one in its place by start. */
    private void rebuild(OpenSessions state, int firstTouched, int touched, long settled, long start, long end,
            int events, long[] merged) {
        int open = state.starts.length;
        int size = 1;
        for (int i = 0; i < open; i++) {
            if (isKept(state, i, firstTouched, touched, settled)) {
                size++;
            }
        }
        long[] starts = new long[size];
        long[] ends = new long[size];
        int[] counts = new int[size];
        long[][] contents = new long[size][];
        int at = 0;
        boolean placed = false;
        for (int i = 0; i < open; i++) {
            if (!isKept(state, i, firstTouched, touched, settled)) {
                continue;
            }
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
    }

    /** An untouched session stays until it can no longer change: it ended more than a gap before the settled time. */
    private boolean isKept(OpenSessions state, int i, int firstTouched, int touched, long settled) {
        boolean isTouched = touched > 0 && i >= firstTouched && i < firstTouched + touched;
        return !isTouched && state.ends[i] + gapMs > settled;
    }

    private void changed(String user, long start, long end, int events, int watched, long version, int deleted) {
        pending.put(new Pending(user, start), new Change(end, events, watched, version, deleted));
    }

    private void flush() {
        for (Map.Entry<Pending, Change> entry : pending.entrySet()) {
            Pending session = entry.getKey();
            Change change = entry.getValue();
            output.collect(new StreamRecord<>(GenericRowData.of(StringData.fromString(session.user()),
                    session.start(), change.end(), (int) ((change.end() - session.start()) / 1000), change.events(),
                    change.watched(), change.version(), change.deleted())));
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
