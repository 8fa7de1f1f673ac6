package com.suuupra.flink.sessions;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * Gap sessions per partition key (a user), kept current on every event instead of when a watermark closes them.
 *
 * <pre>SELECT * FROM gap_sessions(
 *     input => TABLE clicks PARTITION BY user_id, gap_ms => 1800000, bound_ms => 30000, uid => 'sessions')</pre>
 *
 * The input has {@code event_time} (epoch ms), {@code high_ms} (the newest event time seen so far in the event's
 * Kafka partition) and {@code content_id} (the content watched, or NULL). A session is a maximal run of events
 * whose neighbours are less than {@code gap_ms} apart, so an out-of-order event extends a session or merges two.
 * Every change emits the session's new row with a version one higher; a session absorbed by a merge is emitted
 * with {@code deleted = 1}. A ReplacingMergeTree(version) keyed by (user, session_start) keeps the newest row.
 *
 * <p>No watermark decides anything: an event the partition rule accepts is never older than {@code high_ms - bound_ms},
 * so a session that ended more than {@code gap_ms} before that can never change again and leaves the state. The
 * result depends only on each user's events in partition order, which a restore and any parallelism replay alike.
 */
@DataTypeHint("ROW<session_start BIGINT, session_end BIGINT, duration_seconds INT, events INT, "
        + "contents_watched INT, version BIGINT, deleted INT>")
public class GapSessions extends ProcessTableFunction<Row> {
    private static final long serialVersionUID = 1L;

    /** The user's open sessions, parallel arrays sorted by start; `watched` holds space-separated content ids. */
    public static class OpenSessions {
        public long version;
        public long[] starts = new long[0];
        public long[] ends = new long[0];
        public int[] events = new int[0];
        public String[] watched = new String[0];
    }

    public void eval(
            @StateHint OpenSessions state,
            @ArgumentHint(name = "input", value = ArgumentTrait.SET_SEMANTIC_TABLE) Row input,
            @ArgumentHint(name = "gap_ms") Long gapMs,
            @ArgumentHint(name = "bound_ms") Long boundMs) {
        long time = input.<Long>getFieldAs("event_time");
        Long high = input.getFieldAs("high_ms");
        String content = input.getFieldAs("content_id");

        List<Integer> touched = new ArrayList<>();
        List<Integer> kept = new ArrayList<>();
        long settled = (high == null ? time : high) - boundMs;
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
        TreeSet<String> watched = new TreeSet<>();
        if (content != null) {
            watched.add(content);
        }
        for (int i : touched) {
            start = Math.min(start, state.starts[i]);
            end = Math.max(end, state.ends[i]);
            events += state.events[i];
            if (!state.watched[i].isEmpty()) {
                watched.addAll(Arrays.asList(state.watched[i].split(" ")));
            }
        }
        for (int i : touched) {
            if (state.starts[i] != start) {
                state.version++;
                collect(row(state.starts[i], state.ends[i], state.events[i], count(state.watched[i]), state.version, 1));
            }
        }
        state.version++;
        collect(row(start, end, events, watched.size(), state.version, 0));

        int size = kept.size() + 1;
        long[] starts = new long[size];
        long[] ends = new long[size];
        int[] counts = new int[size];
        String[] contents = new String[size];
        int at = 0;
        boolean placed = false;
        for (int i : kept) {
            if (!placed && state.starts[i] > start) {
                starts[at] = start;
                ends[at] = end;
                counts[at] = events;
                contents[at++] = String.join(" ", watched);
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
            contents[at] = String.join(" ", watched);
        }
        state.starts = starts;
        state.ends = ends;
        state.events = counts;
        state.watched = contents;
    }

    private static int count(String watched) {
        return watched.isEmpty() ? 0 : watched.split(" ").length;
    }

    private static Row row(long start, long end, int events, int watched, long version, int deleted) {
        return Row.of(start, end, (int) ((end - start) / 1000), events, watched, version, deleted);
    }
}
